"""Random English-like text of a given length in tokens, shared by the benchmarks' corpora.

Every word of the word lists is one token (with its leading space), and so is each period.
"""


def lengths(rng, n, lo, hi):
    """n lengths spread evenly over [lo, hi] (hi alone when n is 1), shuffled."""
    targets = [hi] if n == 1 else [round(lo + (hi - lo) * i / (n - 1)) for i in range(n)]
    rng.shuffle(targets)
    return targets


def sentences(rng, words, budget):
    """Sentences of 5 to 17 of `words` in at most `budget` tokens, or "Hello." when none fits."""
    out, n = [], 0
    while n < budget:
        k = min(rng.randint(6, 18), budget - n)
        if k <= 1:
            break
        picked = [rng.choice(words) for _ in range(k - 1)]
        out.append(" ".join([picked[0].capitalize()] + picked[1:]) + ".")
        n += k
    return " ".join(out) if out else "Hello."
