//! Inverted lists over sparse vectors with BM25 and CL-SR scorers.
