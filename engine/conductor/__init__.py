"""The conductor: what each follower role plays, planned ahead of the beat from the leader.

`contract` fixes rates, roles and the model's inputs and outputs; `inputs` turns analysis
frames into the model's input steps (the same code builds training data and runs live);
`model` loads and runs the exported ONNX model; `plans` turns predictions into part plans;
`task` is the scheduled task that publishes them on the control bus.
"""
