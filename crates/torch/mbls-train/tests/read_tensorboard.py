#!/usr/bin/env python3
"""Print the scalars of a TensorBoard run folder as JSON, read by TensorBoard itself.

Usage: read_tensorboard.py RUN_DIR [--keep-orphans]

Prints one JSON object on stdout: {tag: [[step, value], ...], ...}, tags sorted, each
tag's points in the order TensorBoard's EventAccumulator returns them. Every scalar is
kept (size_guidance 0 = all): `simple_value` scalars (EventAccumulator.Scalars, what our
Rust writer emits) and the TensorFlow 2 layout, one-element tensors of the "scalars"
plugin (EventAccumulator.Tensors of the tags in PluginTagToContent("scalars")).

By default the accumulator discards "orphaned" points the way the TensorBoard UI does (a
step going backwards drops the later points of that tag); --keep-orphans turns that off.
Non-finite values come out as NaN / Infinity (Python's json default).

Exit status: 0 on success, 2 on bad usage, 3 when the tensorboard package is missing (so
a caller can skip). TensorBoard's own messages go to stderr.

Used by the mbls-train integration test to prove that the files of our Rust event writer
are read by the real TensorBoard reader.
"""

import json
import sys


def main(argv):
    args = [a for a in argv[1:] if not a.startswith("--")]
    flags = {a for a in argv[1:] if a.startswith("--")}
    if len(args) != 1 or not flags <= {"--keep-orphans"}:
        print(__doc__, file=sys.stderr)
        return 2

    try:
        from tensorboard.backend.event_processing import event_accumulator
        from tensorboard.util import tensor_util
    except ImportError as error:
        print(f"tensorboard is not installed: {error}", file=sys.stderr)
        return 3

    accumulator = event_accumulator.EventAccumulator(
        args[0],
        size_guidance={event_accumulator.SCALARS: 0, event_accumulator.TENSORS: 0},
        purge_orphaned_data="--keep-orphans" not in flags,
    )
    accumulator.Reload()

    result = {
        tag: [[event.step, event.value] for event in accumulator.Scalars(tag)]
        for tag in accumulator.Tags()[event_accumulator.SCALARS]
    }
    try:
        tensor_tags = accumulator.PluginTagToContent("scalars")
    except KeyError:
        tensor_tags = {}
    for tag in tensor_tags:
        points = result.setdefault(tag, [])
        for event in accumulator.Tensors(tag):
            value = tensor_util.make_ndarray(event.tensor_proto)
            points.append([event.step, float(value.item())])

    json.dump(result, sys.stdout, sort_keys=True)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
