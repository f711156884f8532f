"""Data-parallel training on CPU: 2 ranks x 1 thread (mpirun, MPI backend,
c10d's Reducer) against 1 rank x 2 threads, same global work per step
(batch 32 per rank at 224, channels_last, SGD), side by side in one run.
Reports images/s, the ratio, and the share of each step spent inside MPI
collectives (they block the backward pass on CPU: no overlap).

Usage: python bench/ddp_throughput.py [--batch 32] [--size 224] [--steps 6]
"""
import argparse
import os

from common import BUILD, host_label, print_table, run_json, write_json

MPI_ENV = {"OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1"}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--json", default=str(BUILD / "bench" / "ddp_throughput.json"))
    args = parser.parse_args()
    os.environ.update(MPI_ENV)
    bench = BUILD / "bench" / "mnv2-bench"
    common = ["train-step", "--channels-last", "--size", args.size, "--steps", args.steps]
    one = run_json([bench, *common, "--threads", 2, "--batch", 2 * args.batch])
    one_small = run_json([bench, *common, "--threads", 2, "--batch", args.batch])
    two = run_json(["mpirun", "-np", 2, "--bind-to", "core", bench, *common,
                    "--threads", 1, "--batch", args.batch])
    host = host_label()
    rows = [
        ["1 rank x 2 threads, batch 64", f"{one['images_per_second']:.1f}", "-", "1.00"],
        ["1 rank x 2 threads, batch 32", f"{one_small['images_per_second']:.1f}", "-",
         f"{one_small['images_per_second'] / one['images_per_second']:.2f}"],
        ["2 ranks x 1 thread, batch 32 each", f"{two['images_per_second']:.1f}",
         f"{100 * two['collective_share']:.1f}%",
         f"{two['images_per_second'] / one['images_per_second']:.2f}"],
    ]
    print_table(f"Data-parallel training at {args.size}px on {host}",
                ["configuration", "img/s", "in collectives", "ratio"], rows)
    write_json(args.json, {"host": host, "one_rank_batch64": one,
                           "one_rank_batch32": one_small, "two_ranks": two})


if __name__ == "__main__":
    main()
