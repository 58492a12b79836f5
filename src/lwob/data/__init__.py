"""Data stages: materialise raw datasets (``sources``), offline demo data (``demo``),
readers/normalisation (``formats``) and per-model tokenisation (``tokenize``)."""
