"""The operator's reports gathered from the registry and the metadata in force: the attention
report (attention.py) and the metadata sources' states (sources.py). Below the web edge and the
CLI, both of which show them: no Flask, no click, no words of a page (web/attention_words.py)."""
