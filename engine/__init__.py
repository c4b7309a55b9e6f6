"""Tutti's compute core: analysis, synthesis, model runners, retrieval and the block processor.

Nothing here opens devices, starts threads or imports torch.
"""
