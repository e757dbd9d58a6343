#!/usr/bin/env python3
"""PyTorch reference for cloze's MLM(+NSP) pre-training recipe.

Trains a HF-architecture BERT (or a pre-LN variant) on the same text, vocabulary, instance
creation, masking, optimiser and schedule as cloze, and prints the held-out MLM loss, so
cloze's held-out loss can be read beside PyTorch's on one recipe. Needs torch and
transformers; installs nothing. See README.md beside this file.
"""
import argparse
import json
import math
import random
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


def parse_args(argv=None):
    """The recipe flags (defaults: cloze's paper-repro `quick` scale, L2/H128/A2)."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    a = p.add_argument
    a("--train", required=True), a("--heldout", required=True), a("--vocab", required=True)
    a("--layers", type=int, default=2), a("--hidden", type=int, default=128)
    a("--heads", type=int, default=2), a("--intermediate", type=int, default=None,
                                          help="default 4·hidden")
    a("--seq", type=int, default=64), a("--batch", type=int, default=32)
    a("--steps", type=int, default=1500), a("--lr", type=float, default=1e-3)
    a("--warmup", type=int, default=150), a("--weight-decay", type=float, default=0.01)
    a("--max-grad-norm", type=float, default=1.0), a("--dropout", type=float, default=0.1)
    a("--masked-lm-prob", type=float, default=0.15), a("--max-predictions", type=int, default=10)
    a("--short-seq-prob", type=float, default=0.1)
    a("--mask", type=float, default=0.8), a("--random", type=float, default=0.1)
    a("--keep", type=float, default=0.1)
    a("--beta1", type=float, default=0.9), a("--beta2", type=float, default=0.999)
    a("--eps", type=float, default=1e-6), a("--init-range", type=float, default=0.02)
    a("--bias-correction", action="store_true",
      help="Adam bias correction (torch.optim.AdamW); off by default, as BERT and cloze")
    a("--seed", type=int, default=1), a("--eval-every", type=int, default=500)
    a("--eval-batches", type=int, default=20)
    a("--prenorm", action="store_true", help="pre-LN variant instead of HF's post-LN BERT")
    a("--objective", choices=["mlm", "mlm+nsp"], default="mlm+nsp")
    a("--fast-tokenizer", action="store_true", help="BertTokenizerFast (same pieces, faster)")
    a("--init-lm-bias", choices=["zeros", "unigram"], default="zeros",
      help="MLM output bias at the start: zeros (BERT) or ln p(w) of the training instances' "
           "masked labels, add-one smoothed (cloze's init_lm_bias)")
    a("--init-dist", choices=["normal", "truncated"], default="normal",
      help="weight matrices and embeddings at the start: normal(0, --init-range) (transformers') "
           "or truncated at 2σ and redrawn (Google's BERT and cloze; its spread is 0.88σ)")
    a("--init-positions", choices=["random", "sinusoidal"], default="random",
      help="position embeddings at the start: random (BERT's normal) or the Transformer's "
           "sines/cosines scaled to σ = --init-range, still learned (cloze's init_positions)")
    a("--dupe-factor", type=int, default=1,
      help="passes over the training corpus when creating instances, each with fresh "
           "randomness (Google's dupe_factor; cloze's [data] dupe_factor)")
    a("--heldout-masked-lm-prob", type=float, default=None,
      help="the held-out set's masking rate when training masks more (cloze's "
           "[data] heldout_masked_lm_prob); default --masked-lm-prob")
    a("--heldout-max-predictions", type=int, default=None,
      help="the held-out set's prediction cap (cloze's heldout_max_predictions_per_seq); "
           "default --max-predictions")
    a("--threads", type=int, default=1), a("--out", default="metrics.jsonl")
    a("--instances", default=None,
      help="train on this stream of instances (JSON lines in step order, as `paper-repro "
           "lockstep stream` writes cloze's) instead of creating them")
    a("--save-init", default=None, help="save the initial weights here (transformers format)")
    a("--stop-after", type=int, default=None,
      help="stop after this many steps (the schedule still spans --steps)")
    a("--steplog", default=None, help="write `step mlm_loss nsp_loss grad_norm` per step here")
    args = p.parse_args(argv)
    if args.save_init and args.prenorm:
        p.error("--save-init writes a transformers folder, which the --prenorm model is not")
    if abs(args.mask + args.random + args.keep - 1.0) > 1e-9:
        p.error("--mask + --random + --keep must sum to 1")
    if args.dupe_factor < 1:
        p.error("--dupe-factor must be at least 1")
    args.intermediate = args.intermediate or 4 * args.hidden
    return args


def read_documents(path, tokenizer):
    """Reads one-sentence-per-line text (blank line between documents) as lists of
    wordpiece-id sentences; empty sentences and documents are dropped."""
    docs, cur = [], []
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if not line:
                if cur:
                    docs.append(cur)
                cur = []
                continue
            ids = tokenizer.convert_tokens_to_ids(tokenizer.tokenize(line))
            if ids:
                cur.append(ids)
    if cur:
        docs.append(cur)
    return docs


def mask_tokens(tokens, args, special, rng):
    """Google's create_masked_lm_predictions (no whole-word masking): picks
    min(max_predictions, max(1, round(len·prob))) positions (rounding half up, as cloze),
    not [CLS]/[SEP], in shuffled order; each → [MASK] / a random id (any, specials included) /
    unchanged by the --mask/--random/--keep shares. Edits `tokens` in place; returns
    (positions, labels) sorted by position."""
    cand = [i for i, t in enumerate(tokens) if t not in (special["cls"], special["sep"])]
    rng.shuffle(cand)
    n = min(args.max_predictions, max(1, math.floor(len(tokens) * args.masked_lm_prob + 0.5)))
    chosen = sorted(cand[:n])
    labels = [tokens[i] for i in chosen]
    for i in cand[:n]:
        r = rng.random()
        if r < args.mask:
            tokens[i] = special["mask"]
        elif r < args.mask + args.random:
            tokens[i] = rng.randrange(special["vocab_size"])
    return chosen, labels


def instances_from_document(docs, d, args, special, nsp, rng):
    """Google's create_instances_from_document: packs whole sentences of document `d` into
    chunks of a target length (seq−3, or a random shorter one with --short-seq-prob), splits
    each into A / B; with NSP, B is from a random other document half the time (always for a
    one-sentence chunk), else the true continuation. Without NSP B is always the continuation
    (cloze's "No NSP"), so a one-sentence chunk gives [CLS] A [SEP]."""
    doc, out = docs[d], []
    max_tokens = args.seq - 3
    target = rng.randint(2, max_tokens) if rng.random() < args.short_seq_prob else max_tokens
    chunk, chunk_len, i = [], 0, 0
    while i < len(doc):
        chunk.append(doc[i])
        chunk_len += len(doc[i])
        if i == len(doc) - 1 or chunk_len >= target:
            a_end = rng.randrange(1, len(chunk)) if len(chunk) >= 2 else 1
            a = [t for s in chunk[:a_end] for t in s]
            b, random_next = [], False
            if nsp and (len(chunk) == 1 or rng.random() < 0.5):
                random_next, target_b = True, max(1, target - len(a))
                other = d
                for _ in range(10):
                    other = rng.randrange(len(docs))
                    if other != d:
                        break
                rdoc = docs[other]
                for s in rdoc[rng.randrange(len(rdoc)):]:
                    b.extend(s)
                    if len(b) >= target_b:
                        break
                i -= len(chunk) - a_end  # the chunk's unused sentences are read again
            else:
                b = [t for s in chunk[a_end:] for t in s]
            while len(a) + len(b) > max_tokens:  # truncate the longer side, front or back
                longer = a if len(a) > len(b) else b
                del longer[0 if rng.random() < 0.5 else -1]
            tokens = [special["cls"]] + a + [special["sep"]]
            segments = [0] * len(tokens)
            if b:
                tokens += b + [special["sep"]]
                segments += [1] * (len(b) + 1)
            pos, labels = mask_tokens(tokens, args, special, rng)
            out.append(dict(tokens=tokens, segments=segments, next=int(random_next),
                            positions=pos, labels=labels))
            chunk, chunk_len = [], 0
        i += 1
    return out


def create_instances(docs, args, special, seed, dupe_factor=1):
    """All instances of `dupe_factor` passes over the corpus (Google's create_pretraining_data
    and cloze: every pass re-chunks and re-masks every document with fresh randomness), each
    (pass, document) from its own seeded RNG, then all shuffled with the seed: deterministic
    given the seed. Pass 0 is the same whatever the dupe factor."""
    nsp = args.objective == "mlm+nsp"
    out = []
    for p in range(dupe_factor):
        for d in range(len(docs)):
            rng = random.Random(f"{seed}:{p}:{d}")
            out += instances_from_document(docs, d, args, special, nsp, rng)
    random.Random(f"{seed}:shuffle").shuffle(out)
    return out


def unigram_log_prior(train, vocab_size):
    """cloze's `unigram_log_prior` for MLM objectives: ln p(w) of the training instances'
    masked labels, add-one smoothed over the vocabulary, as float32 [vocab]."""
    counts = [1.0] * vocab_size
    for x in train:
        for t in x["labels"]:
            if 0 <= t < vocab_size:
                counts[t] += 1.0
    total = sum(counts)
    return torch.tensor([math.log(c / total) for c in counts], dtype=torch.float64).float()


class ContextFree:
    """cloze's `ContextFree` (MLM objectives): baselines that read no context, scored on the
    model's own masked positions. The unigram loss of a position is −ln p(label). The
    context-free loss is that of the best predictor that sees only the input token there: an
    input [MASK] leaves p(w); any other input x gives
    q(w | x) = (k·p(x)·[w = x] + r·p(w)/V) / (k·p(x) + r/V), with k, r the --keep/--random
    shares and V the vocabulary size (random replacements are uniform over the V ids)."""

    def __init__(self, log_prior, keep, random_share, mask_id):
        self.lp = log_prior.tolist()  # the float32 values, as cloze's Vec<f32>
        self.keep, self.random, self.mask_id = keep, random_share, mask_id

    def log_p(self, t):
        return self.lp[t] if 0 <= t < len(self.lp) else -math.inf

    def unigram_loss(self, label):
        return -self.log_p(label)

    def context_free_loss(self, inp, label):
        lp = self.log_p(label)
        if inp == self.mask_id:
            return -lp
        v = len(self.lp)
        px = math.exp(self.log_p(inp))
        z = self.keep * px + self.random / v
        if z <= 0.0:
            return -lp
        same = self.keep * px if inp == label else 0.0
        return -math.log((same + self.random * math.exp(lp) / v) / z)

    def heldout(self, insts):
        """(mean unigram loss, mean context-free loss) over all masked positions of `insts`
        (input = the token the model sees there after masking)."""
        uni, cf, n = 0.0, 0.0, 0
        for x in insts:
            for pos, label in zip(x["positions"], x["labels"]):
                uni += self.unigram_loss(label)
                cf += self.context_free_loss(x["tokens"][pos], label)
                n += 1
        return uni / max(n, 1), cf / max(n, 1)


def sinusoidal_positions(positions, hidden, std):
    """cloze's `sinusoidal_positions`: [positions, hidden], sin in even columns and cos in odd
    ones of pos·exp(−ln(10000)·2⌊i/2⌋/hidden), scaled by σ·√2 (a sine over whole periods has
    σ 1/√2) so the values have standard deviation ≈ `std`; float32."""
    pos = torch.arange(positions, dtype=torch.float64).unsqueeze(1)
    i = torch.arange(hidden)
    freq = torch.exp(-math.log(10000.0) * (2 * (i // 2)).double() / hidden)
    angle = pos * freq
    table = torch.where(i % 2 == 0, torch.sin(angle), torch.cos(angle)).float()
    scale = torch.tensor(std, dtype=torch.float32) * torch.tensor(math.sqrt(2), dtype=torch.float32)
    return scale * table


def make_batch(insts, seq, pad_id):
    """Pads a list of instances to `seq`; masked positions become flat indices into the
    (batch·seq) hidden rows, so the MLM head runs on them alone (as cloze does)."""
    n = len(insts)
    ids = torch.full((n, seq), pad_id, dtype=torch.long)
    seg = torch.zeros((n, seq), dtype=torch.long)
    att = torch.zeros((n, seq), dtype=torch.long)
    flat, labels = [], []
    for r, x in enumerate(insts):
        L = len(x["tokens"])
        ids[r, :L], seg[r, :L], att[r, :L] = torch.tensor(x["tokens"]), torch.tensor(x["segments"]), 1
        flat += [r * seq + p for p in x["positions"]]
        labels += x["labels"]
    nxt = torch.tensor([x["next"] for x in insts], dtype=torch.long)
    return ids, seg, att, torch.tensor(flat), torch.tensor(labels), nxt


class PreLNBert(nn.Module):
    """Pre-LN BERT: embeddings + LayerNorm, norm_first encoder layers, a final LayerNorm, and
    BERT's MLM head (dense+gelu+LayerNorm, decoder tied to the word embeddings, + bias)."""

    def __init__(self, vocab, a):
        super().__init__()
        h = a.hidden
        self.word = nn.Embedding(vocab, h)
        self.position = nn.Embedding(max(a.seq, 128), h)
        self.token_type = nn.Embedding(2, h)
        self.emb_LayerNorm = nn.LayerNorm(h, eps=1e-12)
        self.drop = nn.Dropout(a.dropout)
        self.layers = nn.ModuleList(nn.TransformerEncoderLayer(
            h, a.heads, a.intermediate, a.dropout, activation="gelu", layer_norm_eps=1e-12,
            batch_first=True, norm_first=True) for _ in range(a.layers))
        self.final_LayerNorm = nn.LayerNorm(h, eps=1e-12)
        self.transform = nn.Linear(h, h)
        self.head_LayerNorm = nn.LayerNorm(h, eps=1e-12)
        self.decoder_bias = nn.Parameter(torch.zeros(vocab))
        self.pooler, self.nsp = nn.Linear(h, h), nn.Linear(h, 2)
        for m in self.modules():  # BERT's initialisation
            if isinstance(m, (nn.Linear, nn.Embedding)):
                nn.init.normal_(m.weight, 0.0, a.init_range)
            if isinstance(m, nn.Linear) and m.bias is not None:
                nn.init.zeros_(m.bias)
            if isinstance(m, nn.MultiheadAttention):
                nn.init.normal_(m.in_proj_weight, 0.0, a.init_range)
                nn.init.zeros_(m.in_proj_bias)

    def encode(self, ids, seg, att):
        """Hidden states [B, S, H] after the final LayerNorm."""
        pos = torch.arange(ids.shape[1]).unsqueeze(0)
        x = self.drop(self.emb_LayerNorm(self.word(ids) + self.position(pos) + self.token_type(seg)))
        pad = att == 0
        for layer in self.layers:
            x = layer(x, src_key_padding_mask=pad)
        return self.final_LayerNorm(x)

    def lm_biases(self):
        return [self.decoder_bias]

    def position_table(self):
        return self.position.weight

    def mlm_logits(self, rows):
        x = self.head_LayerNorm(F.gelu(self.transform(rows)))
        return x @ self.word.weight.t() + self.decoder_bias

    def nsp_logits(self, hidden):
        return self.nsp(torch.tanh(self.pooler(hidden[:, 0])))


class HFBert(nn.Module):
    """transformers' post-LN BERT (BertForPreTraining / BertForMaskedLM) with the same
    encode / mlm_logits / nsp_logits interface."""

    def __init__(self, vocab, a, pad_id):
        super().__init__()
        from transformers import BertConfig, BertForMaskedLM, BertForPreTraining
        cfg = BertConfig(vocab_size=vocab, hidden_size=a.hidden, num_hidden_layers=a.layers,
                         num_attention_heads=a.heads, intermediate_size=a.intermediate,
                         hidden_act="gelu", hidden_dropout_prob=a.dropout,
                         attention_probs_dropout_prob=a.dropout, pad_token_id=pad_id,
                         max_position_embeddings=max(a.seq, 128), type_vocab_size=2,
                         initializer_range=a.init_range, layer_norm_eps=1e-12)
        cfg._attn_implementation = "eager"
        cls = BertForPreTraining if a.objective == "mlm+nsp" else BertForMaskedLM
        self.m = cls(cfg)

    def encode(self, ids, seg, att):
        out = self.m.bert(input_ids=ids, token_type_ids=seg, attention_mask=att)
        self.pooled = out.pooler_output
        return out.last_hidden_state

    def lm_biases(self):
        """`cls.predictions.bias` and `cls.predictions.decoder.bias` (tied: one Parameter in
        transformers; both are returned so a copy sets both even if they were not)."""
        p = self.m.cls.predictions
        return [p.bias] if p.decoder.bias is p.bias else [p.bias, p.decoder.bias]

    def position_table(self):
        return self.m.bert.embeddings.position_embeddings.weight

    def mlm_logits(self, rows):
        return self.m.cls.predictions(rows)

    def nsp_logits(self, hidden):
        return self.m.cls.seq_relationship(self.pooled)


def losses(model, batch, nsp):
    """(MLM loss mean over masked positions, NSP loss or 0, masked count)."""
    ids, seg, att, flat, labels, nxt = batch
    hidden = model.encode(ids, seg, att)
    rows = hidden.reshape(-1, hidden.shape[-1]).index_select(0, flat)
    mlm = F.cross_entropy(model.mlm_logits(rows), labels)
    nsp_loss = F.cross_entropy(model.nsp_logits(hidden), nxt) if nsp else torch.zeros(())
    return mlm, nsp_loss, len(labels)


def bert_lr(step, a):
    """BERT's schedule for the update numbered `step` (0-based): peak·step/warmup while
    step < warmup, else linear decay from step 0: peak·(1 − step/total)."""
    if step < a.warmup:
        return a.lr * step / a.warmup
    return a.lr * max(0, a.steps - step) / a.steps


class BertAdamW(torch.optim.Optimizer):
    """BERT's AdamWeightDecayOptimizer (as cloze's default): AdamW without bias correction,
    p ← p − lr·(m/(√v+ε) + wd·p)."""

    def __init__(self, groups, lr, betas, eps):
        super().__init__(groups, dict(lr=lr, betas=betas, eps=eps, weight_decay=0.0))

    @torch.no_grad()
    def step(self):
        for g in self.param_groups:
            b1, b2 = g["betas"]
            for p in g["params"]:
                if p.grad is None:
                    continue
                st = self.state[p]
                if not st:
                    st["m"], st["v"] = torch.zeros_like(p), torch.zeros_like(p)
                st["m"].mul_(b1).add_(p.grad, alpha=1 - b1)
                st["v"].mul_(b2).addcmul_(p.grad, p.grad, value=1 - b2)
                update = st["m"] / (st["v"].sqrt() + g["eps"]) + g["weight_decay"] * p
                p.add_(update, alpha=-g["lr"])


def batch_indices(step, a, n, perms):
    """Instances of the batch for `step`: position step·batch+i of the stream that goes
    through a seeded permutation of the n instances per epoch (as cloze's trainer does)."""
    out = []
    for flat in range(step * a.batch, (step + 1) * a.batch):
        epoch = flat // n
        if epoch not in perms:
            perms.clear()
            perms[epoch] = list(range(n))
            random.Random(f"{a.seed}:epoch:{epoch}").shuffle(perms[epoch])
        out.append(perms[epoch][flat % n])
    return out


def make_optimizer(model, a):
    """Two parameter groups: LayerNorm weights and biases get no weight decay (BERT's rule)."""
    ln = {id(p) for m in model.modules() if isinstance(m, nn.LayerNorm) for p in m.parameters()}
    no = [p for n, p in model.named_parameters() if id(p) in ln or "bias" in n]
    no_ids = {id(p) for p in no}
    yes = [p for p in model.parameters() if id(p) not in no_ids]
    groups = [dict(params=yes, weight_decay=a.weight_decay), dict(params=no, weight_decay=0.0)]
    if a.bias_correction:
        return torch.optim.AdamW(groups, lr=a.lr, betas=(a.beta1, a.beta2), eps=a.eps)
    return BertAdamW(groups, lr=a.lr, betas=(a.beta1, a.beta2), eps=a.eps)


@torch.no_grad()
def evaluate(model, batches, nsp):
    """Held-out MLM loss: cross-entropy summed over all masked positions / their count."""
    model.eval()
    total, count = 0.0, 0
    for b in batches:
        mlm, _, n = losses(model, b, nsp)
        total, count = total + mlm.item() * n, count + n
    model.train()
    return total / count


@torch.no_grad()
def init_recipe(model, a, prior):
    """--init-dist, --init-lm-bias and --init-positions, applied after the model's own
    initialisation."""
    if a.init_dist == "truncated":
        r = a.init_range
        for m in model.modules():
            w = (m.weight if isinstance(m, (nn.Linear, nn.Embedding)) else
                 m.in_proj_weight if isinstance(m, nn.MultiheadAttention) else None)
            if w is not None:
                nn.init.trunc_normal_(w, 0.0, r, -2 * r, 2 * r)
    if a.init_lm_bias == "unigram":
        for b in model.lm_biases():
            b.copy_(prior)
    if a.init_positions == "sinusoidal":
        w = model.position_table()
        w.copy_(sinusoidal_positions(w.shape[0], w.shape[1], a.init_range))


def main(argv=None):
    a = parse_args(argv)
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    from transformers import BertTokenizer, BertTokenizerFast
    tok = (BertTokenizerFast if a.fast_tokenizer else BertTokenizer)(a.vocab, do_lower_case=True)
    vocab = len(tok.vocab)
    special = dict(cls=tok.cls_token_id, sep=tok.sep_token_id, mask=tok.mask_token_id,
                   vocab_size=vocab)
    t0 = time.time()
    train_docs, held_docs = read_documents(a.train, tok), read_documents(a.heldout, tok)
    if a.instances:
        with open(a.instances) as f:
            train = [json.loads(line) for line in f if line.strip()]
        need = a.batch * (a.stop_after or a.steps)
        if len(train) < need:
            sys.exit(f"--instances {a.instances} holds {len(train)} instances; the run reads {need}")
    else:
        train = create_instances(train_docs, a, special, a.seed, a.dupe_factor)
    held_args = argparse.Namespace(**vars(a))
    if a.heldout_masked_lm_prob is not None:
        held_args.masked_lm_prob = a.heldout_masked_lm_prob
    if a.heldout_max_predictions is not None:
        held_args.max_predictions = a.heldout_max_predictions
    held = create_instances(held_docs, held_args, special, 12345)[: a.batch * a.eval_batches]
    held_batches = [make_batch(held[i:i + a.batch], a.seq, tok.pad_token_id)
                    for i in range(0, len(held), a.batch)]
    prior = unigram_log_prior(train, vocab)
    uni, cf = ContextFree(prior, a.keep, a.random, special["mask"]).heldout(held)
    print(f"data: {len(train)} train instances ({a.dupe_factor} pass(es)) / {len(held)} "
          f"held-out, vocab {vocab}, {time.time() - t0:.1f}s", flush=True)
    print(f"held-out masked positions: unigram loss {uni:.4f} nats, context-free floor "
          f"{cf:.4f} (uniform: {math.log(vocab):.4f})", flush=True)
    nsp = a.objective == "mlm+nsp"
    model = PreLNBert(vocab, a) if a.prenorm else HFBert(vocab, a, tok.pad_token_id)
    init_recipe(model, a, prior)
    if a.save_init:
        model.m.save_pretrained(a.save_init)
    steplog = open(a.steplog, "w") if a.steplog else None
    model.train()
    opt = make_optimizer(model, a)
    params = [p for p in model.parameters()]
    perms, train_sum, train_n, seconds, cpu, last = {}, 0.0, 0, 0.0, 0.0, None
    with open(a.out, "w") as log:
        for step in range(a.steps):
            start, cpu_start = time.time(), time.process_time()
            if a.instances:  # the stream is already in step order
                insts = train[step * a.batch:(step + 1) * a.batch]
            else:
                insts = [train[j] for j in batch_indices(step, a, len(train), perms)]
            for g in opt.param_groups:
                g["lr"] = bert_lr(step, a)
            mlm, nsp_loss, _ = losses(model, make_batch(insts, a.seq, tok.pad_token_id), nsp)
            opt.zero_grad(set_to_none=True)
            (mlm + nsp_loss).backward()
            norm = torch.nn.utils.clip_grad_norm_(params, a.max_grad_norm)
            opt.step()
            seconds += time.time() - start
            cpu += time.process_time() - cpu_start
            train_sum, train_n = train_sum + mlm.item(), train_n + 1
            if steplog:
                steplog.write(f"{step + 1} {mlm.item():.6f} {nsp_loss.item():.6f} {norm.item():.6f}\n")
            if a.stop_after is not None and step + 1 >= a.stop_after:
                steplog and steplog.close()
                print(f"stopped after step {step + 1} (--stop-after)")
                return 0
            done = step + 1
            if done % a.eval_every == 0 or done == a.steps:
                last = evaluate(model, held_batches, nsp)
                rec = dict(step=done, heldout_mlm_loss=round(last, 6),
                           heldout_unigram_loss=round(uni, 6),
                           heldout_context_free_loss=round(cf, 6),
                           train_loss=round(train_sum / train_n, 6), seconds=round(seconds, 2),
                           cpu_seconds=round(cpu, 2))
                line = json.dumps(rec)
                print(line, flush=True)
                log.write(line + "\n")
                train_sum, train_n = 0.0, 0
    print(f"{seconds / a.steps * 1000:.1f} ms/step wall, {cpu / a.steps * 1000:.1f} ms/step CPU "
          f"({a.threads} thread(s), training steps only)")
    print(f"held-out MLM loss {last:.4f} at step {a.steps}")


if __name__ == "__main__":
    sys.exit(main())
