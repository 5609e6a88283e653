"""Building: plans, toolchains, build images and what a build needs."""

# The build image's base when none is given (--builder-base, the config key builder.base): the one the set-up
# makes (scripts/dev, with the rootfs task) when the engine has it, else FALLBACK_BASE, which a registry has. Here
# rather than in buildimage.py: the CLI's help names them, and a native build loads nothing of the build image.
SETUP_BASE = "fromscratch/debian:bookworm"
FALLBACK_BASE = "ubuntu:24.04"
