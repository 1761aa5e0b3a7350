#!/usr/bin/env python3
"""Reads a CIFF file with ciff-toolkit (an independent reader: Google protobuf's Python
runtime over the official schema) and prints it in a plain, engine-neutral form:

    header <version> <num_postings_lists> <num_docs> <total_terms_in_collection>
    term <term> <df> <cf> <docid>:<tf> ...     (absolute docids, gaps decoded)
    doc <docid> <collection_docid> <doclength>

Run with the venv made by `scripts/setup-assets --lucene`:
    assets/lucene/ciff-venv/bin/python scripts/ciff-toolkit-dump.py FILE.ciff
"""
import sys

from ciff_toolkit.read import CiffReader


def main(path):
    out = sys.stdout
    with CiffReader(path) as reader:
        h = reader.header
        out.write(f"header {h.version} {h.num_postings_lists} {h.num_docs} {h.total_terms_in_collection}\n")
        for pl in reader.read_postings_lists():
            docid = 0
            postings = []
            for i, p in enumerate(pl.postings):
                docid = p.docid if i == 0 else docid + p.docid
                postings.append(f"{docid}:{p.tf}")
            out.write(f"term {pl.term} {pl.df} {pl.cf} {' '.join(postings)}\n")
        for doc in reader.read_documents():
            out.write(f"doc {doc.docid} {doc.collection_docid} {doc.doclength}\n")


if __name__ == "__main__":
    main(sys.argv[1])
