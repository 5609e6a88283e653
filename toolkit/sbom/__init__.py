"""What a program is made of, by package: what its link took (links), and the SPDX documents written beside it,
attached to its image and read back (spdx and the modules beside it)."""

# SPDX's word for what fromscratch cannot know (a supplier, a version); here, not in spdx.py, for what names it
# before a document is made (a flag's default, the CLI with no supplier given), which then loads nothing of SPDX.
NOASSERTION = "NOASSERTION"
# Who supplies the programs, when neither --supplier nor the config key sbom.supplier says (suppliers.choose).
SUPPLIER_ENV = "FROMSCRATCH_SBOM_SUPPLIER"
