//! paper-repro: reruns the BERT paper's ablations (Tables 5, 6, 8 and Figure 5) at small scale.
//!
//! Not built yet: it needs the BERT model (issue 4) and the pre-training loop (issue 5).
//! Until then this binary says what is coming and exits with a non-zero status, so nobody
//! mistakes it for a result.

fn main() {
    eprintln!(
        "paper-repro is not implemented yet.\n\
         Planned experiments: pre-training tasks (Table 5), masking strategies (Table 8),\n\
         MLM vs LTR over training (Figure 5), model size (Table 6).\n\
         It needs cloze's BERT model and pre-training loop first."
    );
    std::process::exit(2);
}
