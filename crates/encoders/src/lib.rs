//! Dense retrievers through ONNX Runtime. Not yet implemented: this crate is reserved for the encoders work.
