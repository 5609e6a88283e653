"""What a program is made of, by package: what its link took (links), and the SPDX documents written beside it,
attached to its image and read back (spdx and the modules beside it)."""
