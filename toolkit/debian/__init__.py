"""Debian source packages as a build's input: fetched from the archive apt trusts, read, built (`build --debian`)."""
