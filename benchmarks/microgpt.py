"""A microgpt-style character GPT on scalar Values, written once and run with any Value class.

The model and its training loop are the shape of Karpathy's microgpt (Feb 2026): token and
position embeddings, RMSNorm, causal multi-head self-attention over a KV cache, a ReLU MLP,
softmax cross-entropy and a hand-written Adam loop, every number a scalar `Value`. The names
it learns are made here from a seeded syllable table, so nothing is downloaded.

The script is the same code for every run; only the `Value` class changes:
    inline     the class such scripts carry (defined below, a few lines of pure Python)
    micrograd  `from micrograd import Value` (the compiled engine, or the pure one with
               MICROGRAD_NO_EXTENSIONS=1)
    floor      a compiled class whose ops compute floats and record nothing: no engine can
               run this script faster, so it is the floor (benchmarks/_floor.pyx)

    python benchmarks/microgpt.py --value micrograd --embd 16 --layers 1 --steps 10
"""
import argparse
import math
import random
import time

BOS = 0  # token 0 opens and closes every name


class Value:
    """The scalar Value such scripts carry: each op records its children and local gradients."""
    __slots__ = ("data", "grad", "_children", "_local_grads")

    def __init__(self, data, children=(), local_grads=()):
        self.data = data
        self.grad = 0
        self._children = children
        self._local_grads = local_grads

    def __add__(self, other):
        other = other if isinstance(other, Value) else Value(other)
        return Value(self.data + other.data, (self, other), (1, 1))

    def __mul__(self, other):
        other = other if isinstance(other, Value) else Value(other)
        return Value(self.data * other.data, (self, other), (other.data, self.data))

    def __pow__(self, k):
        return Value(self.data ** k, (self,), (k * self.data ** (k - 1),))

    def log(self):
        return Value(math.log(self.data), (self,), (1 / self.data,))

    def exp(self):
        e = math.exp(self.data)
        return Value(e, (self,), (e,))

    def relu(self):
        return Value(max(0, self.data), (self,), (float(self.data > 0),))

    def __neg__(self):
        return self * -1

    def __radd__(self, other):  # other + self
        return self + other

    def __sub__(self, other):
        return self + (-other)

    def __rsub__(self, other):  # other - self
        return other + (-self)

    def __rmul__(self, other):  # other * self
        return self * other

    def __truediv__(self, other):
        return self * other ** -1

    def __rtruediv__(self, other):  # other / self
        return other * self ** -1

    def backward(self):
        order, seen = [], set()

        def visit(v):
            if v not in seen:
                seen.add(v)
                for c in v._children:
                    visit(c)
                order.append(v)
        visit(self)
        self.grad = 1
        for v in reversed(order):
            for c, g in zip(v._children, v._local_grads):
                c.grad += g * v.grad


# ---------------------------------------------------------------- data

ONSETS = ["", "b", "br", "c", "ch", "d", "f", "g", "h", "j", "k", "l", "m", "n", "p", "r", "s",
          "sh", "t", "th", "v", "w", "z"]
VOWELS = ["a", "e", "i", "o", "u", "y", "ai", "ea", "io"]
CODAS = ["", "", "n", "l", "r", "s", "th", "x", "nd", "m"]


def make_names(n, seed=7):
    """n made-up names of 1-3 syllables: deterministic, lower-case a-z."""
    rng = random.Random(seed)
    names = []
    for _ in range(n):
        parts = [rng.choice(ONSETS) + rng.choice(VOWELS) + rng.choice(CODAS)
                 for _ in range(rng.choice((1, 2, 2, 3)))]
        names.append("".join(parts))
    return names


# ---------------------------------------------------------------- the model

def make_model(Value, n_embd, n_layer, n_head=4, block_size=16, seed=42):
    """(vocabulary, parameter matrices, flat parameter list) with seeded Gaussian weights."""
    chars = sorted(set("".join(make_names(500))))
    vocab = len(chars) + 1
    rng = random.Random(seed)

    def matrix(nout, nin, std=0.08):
        return [[Value(rng.gauss(0, std)) for _ in range(nin)] for _ in range(nout)]

    state = {"wte": matrix(vocab, n_embd), "wpe": matrix(block_size, n_embd),
             "lm_head": matrix(vocab, n_embd)}
    for i in range(n_layer):
        state[f"layer{i}.attn_wq"] = matrix(n_embd, n_embd)
        state[f"layer{i}.attn_wk"] = matrix(n_embd, n_embd)
        state[f"layer{i}.attn_wv"] = matrix(n_embd, n_embd)
        state[f"layer{i}.attn_wo"] = matrix(n_embd, n_embd)
        state[f"layer{i}.mlp_fc1"] = matrix(4 * n_embd, n_embd)
        state[f"layer{i}.mlp_fc2"] = matrix(n_embd, 4 * n_embd)
    params = [p for mat in state.values() for row in mat for p in row]
    config = {"n_embd": n_embd, "n_layer": n_layer, "n_head": n_head, "block_size": block_size,
              "vocab": vocab, "stoi": {ch: i + 1 for i, ch in enumerate(chars)}}
    return config, state, params


def linear(x, w):
    return [sum(wi * xi for wi, xi in zip(row, x)) for row in w]


def softmax(logits):
    top = max(v.data for v in logits)
    exps = [(v - top).exp() for v in logits]
    total = sum(exps)
    return [e / total for e in exps]


def rmsnorm(x):
    ms = sum(xi * xi for xi in x) / len(x)
    scale = (ms + 1e-5) ** -0.5
    return [xi * scale for xi in x]


def gpt(config, state, token, pos, keys, values):
    """The logits for the next token, given this one; keys/values are the KV cache per layer."""
    n_embd, n_head = config["n_embd"], config["n_head"]
    head_dim = n_embd // n_head
    x = [t + p for t, p in zip(state["wte"][token], state["wpe"][pos])]
    x = rmsnorm(x)
    for li in range(config["n_layer"]):
        residual = x
        x = rmsnorm(x)
        q = linear(x, state[f"layer{li}.attn_wq"])
        k = linear(x, state[f"layer{li}.attn_wk"])
        v = linear(x, state[f"layer{li}.attn_wv"])
        keys[li].append(k)
        values[li].append(v)
        heads = []
        for h in range(n_head):
            lo, hi = h * head_dim, (h + 1) * head_dim
            q_h = q[lo:hi]
            k_h = [kt[lo:hi] for kt in keys[li]]
            v_h = [vt[lo:hi] for vt in values[li]]
            logits = [sum(q_h[j] * kt[j] for j in range(head_dim)) / head_dim ** 0.5 for kt in k_h]
            weights = softmax(logits)
            heads.extend(sum(weights[t] * v_h[t][j] for t in range(len(v_h))) for j in range(head_dim))
        x = linear(heads, state[f"layer{li}.attn_wo"])
        x = [a + b for a, b in zip(x, residual)]
        residual = x
        x = rmsnorm(x)
        x = [xi.relu() for xi in linear(x, state[f"layer{li}.mlp_fc1"])]
        x = linear(x, state[f"layer{li}.mlp_fc2"])
        x = [a + b for a, b in zip(x, residual)]
    return linear(x, state["lm_head"])


def gpt_fused(F, config, state, token, pos, keys, values):
    """gpt() with its helpers and attention sums swapped for micrograd.functional (the recipe
    (b) of the README): the same numbers, each list op one engine call."""
    n_embd, n_head = config["n_embd"], config["n_head"]
    head_dim = n_embd // n_head
    x = [t + p for t, p in zip(state["wte"][token], state["wpe"][pos])]
    x = F.rmsnorm(x)
    for li in range(config["n_layer"]):
        residual = x
        x = F.rmsnorm(x)
        q = F.linear(x, state[f"layer{li}.attn_wq"])
        k = F.linear(x, state[f"layer{li}.attn_wk"])
        v = F.linear(x, state[f"layer{li}.attn_wv"])
        keys[li].append(k)
        values[li].append(v)
        heads = F.attention(q, keys[li], values[li], n_head)
        x = F.linear(heads, state[f"layer{li}.attn_wo"])
        x = [a + b for a, b in zip(x, residual)]
        residual = x
        x = F.rmsnorm(x)
        x = F.linear(x, state[f"layer{li}.mlp_fc1"], act="relu")
        x = F.linear(x, state[f"layer{li}.mlp_fc2"])
        x = [a + b for a, b in zip(x, residual)]
    return F.linear(x, state["lm_head"])


VARIANTS = {
    "a": "unchanged but for the import",
    "b": "linear, softmax, rmsnorm and the attention sums from micrograd.functional",
    "c": "as (b), and micrograd.optim.Adam for the hand-written Adam loop",
}


class Trainer:
    """microgpt's loop: one name per step, mean cross-entropy over its tokens, then Adam."""

    def __init__(self, Value, n_embd=16, n_layer=1, steps=1000, lr=0.01, seed=42, variant="a"):
        if variant not in VARIANTS:
            raise ValueError(f"unknown variant {variant!r}; choose one of {sorted(VARIANTS)}")
        self.variant = variant
        self.config, self.state, self.params = make_model(Value, n_embd, n_layer, seed=seed)
        docs = make_names(2000)
        random.Random(seed).shuffle(docs)
        self.docs, self.steps, self.lr = docs, steps, lr
        self.beta1, self.beta2, self.eps = 0.85, 0.99, 1e-8
        self.m = [0.0] * len(self.params)
        self.v = [0.0] * len(self.params)
        self.step_no = 0
        self.F = self.opt = None
        if variant != "a":
            import micrograd.functional as F
            self.F = F
        if variant == "c":
            from micrograd.optim import Adam
            self.opt = Adam(self.params, lr=lr, betas=(self.beta1, self.beta2), eps=self.eps)

    def step(self):
        """One training step; returns the step's loss as a float."""
        config, state, params = self.config, self.state, self.params
        doc = self.docs[self.step_no % len(self.docs)]
        tokens = [BOS] + [config["stoi"][ch] for ch in doc] + [BOS]
        n = min(config["block_size"], len(tokens) - 1)
        keys = [[] for _ in range(config["n_layer"])]
        values = [[] for _ in range(config["n_layer"])]
        losses = []
        F = self.F
        for pos in range(n):
            if F is None:
                logits = gpt(config, state, tokens[pos], pos, keys, values)
                probs = softmax(logits)
            else:
                logits = gpt_fused(F, config, state, tokens[pos], pos, keys, values)
                probs = F.softmax(logits)
            losses.append(-probs[tokens[pos + 1]].log())
        loss = (1 / n) * sum(losses)
        loss.backward()
        # Adam, by hand, with a linearly decaying learning rate
        t = self.step_no
        lr_t = self.lr * (1 - t / self.steps)
        if self.opt is not None:  # the same update by micrograd.optim.Adam, one C loop
            self.opt.lr = lr_t
            self.opt.step()
            self.opt.zero_grad()
            self.step_no += 1
            return float(loss.data)
        m, v, b1, b2 = self.m, self.v, self.beta1, self.beta2
        for i, p in enumerate(params):
            m[i] = b1 * m[i] + (1 - b1) * p.grad
            v[i] = b2 * v[i] + (1 - b2) * p.grad ** 2
            m_hat = m[i] / (1 - b1 ** (t + 1))
            v_hat = v[i] / (1 - b2 ** (t + 1))
            p.data -= lr_t * m_hat / (v_hat ** 0.5 + self.eps)
            p.grad = 0
        self.step_no += 1
        return float(loss.data)


def value_class(name):
    """The Value class a run uses: inline, micrograd or floor."""
    if name == "inline":
        return Value
    if name == "micrograd":
        from micrograd import Value as MgValue
        return MgValue
    if name == "floor":
        import _floor_build
        return _floor_build.load().Value
    raise ValueError(f"unknown Value class {name!r}; choose inline, micrograd or floor")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--value", default="micrograd", help="inline, micrograd or floor")
    p.add_argument("--embd", type=int, default=16)
    p.add_argument("--layers", type=int, default=1)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--variant", default="a", choices=sorted(VARIANTS),
                   help="; ".join(f"{k}: {v}" for k, v in VARIANTS.items()))
    args = p.parse_args(argv)
    trainer = Trainer(value_class(args.value), args.embd, args.layers, steps=max(args.steps, 1000),
                      variant=args.variant)
    for k in range(args.steps):
        t0 = time.perf_counter()
        loss = trainer.step()
        print(f"step {k:3d}  loss {loss:.6f}  {1e3 * (time.perf_counter() - t0):8.2f} ms")


if __name__ == "__main__":
    main()
