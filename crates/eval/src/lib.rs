//! TREC qrels, runs and BEIR datasets with trec_eval-exact metrics.
