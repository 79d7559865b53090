"""Random English-like text of a given length in tokens, shared by the benchmarks' corpora.

Every word of the word lists is one token (with its leading space), and so is each period.
"""

# The words the corpora are made of (a few stand twice, which makes them likelier).
WORDS = """
the of and to in is was for that with as on by at from this be are or it an which have has
not but were had they their one all can more there been also other new when who two some first
time years would about these into its may than only over most after such where between many
through during both under under city world state water system number people group part high
school family house river music game area name early public large later life music film work
water power small second light point market three season general local major place government
history form life order line study national level report field center model control design data
process energy health sound color value method result network series light source term class
village country story science land river island mountain forest road station church garden
building bridge valley coast lake north south east west winter summer spring autumn morning
evening history language culture economy industry company product service member player team
league club match season record album song band artist author book novel poem paper letter
""".split()


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
