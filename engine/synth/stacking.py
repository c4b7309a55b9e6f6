"""Several objects' state in one array per field, so one compiled call steps them all.

An object that can join a bank exposes its mutable state as named arrays (`state_arrays`) and
takes views back (`adopt_state`). `gather` copies each field of every object into one array
and hands each object its own view of it: the object goes on working alone through its own
methods, and a bank kernel reaches every object's state through a few stacked arrays instead
of one Python-to-kernel call per object.
"""

from __future__ import annotations

import numpy as np

State = dict[str, np.ndarray]


def gather(states: list[State], *, end_to_end: bool = False) -> tuple[State, list[State]]:
    """(stacked fields, each object's views of them) for objects whose fields share shapes.

    By default field `name` becomes [n_objects, *shape] and object i's view is row i. With
    `end_to_end`, fields [n_i, ...] (a per-slot array of an object with n_i slots) are laid end
    to end along the first axis and object i's view is its run of rows.
    """
    stacked: State = {}
    views: list[State] = [{} for _ in states]
    for name in states[0]:
        arrays = [state[name] for state in states]
        stacked[name] = np.concatenate(arrays) if end_to_end else np.stack(arrays)
        start = 0
        for view, array in zip(views, arrays):
            if end_to_end:
                view[name] = stacked[name][start:start + array.shape[0]]
                start += array.shape[0]
            else:
                view[name] = stacked[name][start]
                start += 1
    return stacked, views


def first_rows(states: list[State], names: tuple[str, ...]) -> State:
    """Fields that every object holds equal (tables built from the same sizes): the first's;
    a ValueError when one differs, since a bank passes them once for all."""
    for name in names:
        for state in states[1:]:
            if not np.array_equal(state[name], states[0][name]):
                raise ValueError(f"bank members differ in {name}: build them with the same sizes")
    return {name: states[0][name] for name in names}
