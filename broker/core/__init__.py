"""The pure core: pseudonyms, attribute catalogue, release rule, errors, model and ports."""
