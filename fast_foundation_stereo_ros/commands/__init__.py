"""Sub-commands of `ffs-stereo`; each module defines `register(subparsers)`."""
