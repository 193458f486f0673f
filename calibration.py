"""Probabilities that mean what they say: temperature scaling and the measures that check it.

    fit_temperature(logits, labels)     the T minimising the NLL of softmax(logits / T)
    scores(probs, labels)               top-label ECE (15 equal-width bins), NLL, Brier, accuracy
    bootstrap_interval(fn, probs, ...)  a 95% percentile interval of any of those over resampled faces
    reliability_diagram(ax, ...)        accuracy against confidence per bin, with the gap shaded

Temperature scaling (Guo et al., "On Calibration of Modern Neural Networks", ICML 2017) divides
every logit by one number fitted on held-out data, so the predicted class and the accuracy stay
exactly as they were; only the confidence moves. Here it is fitted on PublicTest (the split that
already selects epochs) and judged on PrivateTest, which chose nothing.
"""
import numpy as np
import torch
import torch.nn.functional as F

BINS = 15


def fit_temperature(logits, labels):
    """logits (N, C) float, labels (N,) long -> T > 0 minimising mean cross-entropy of logits / T.

    One parameter, a smooth convex-in-practice objective: L-BFGS on log T (which keeps T positive)
    converges in a few iterations.
    """
    logits, labels = logits.detach().double().cpu(), labels.detach().long().cpu()
    log_t = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([log_t], lr=0.5, max_iter=100, tolerance_grad=1e-10, tolerance_change=1e-12,
                            line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = F.cross_entropy(logits / log_t.exp(), labels)
        loss.backward()
        return loss
    opt.step(closure)
    return float(log_t.detach().exp())


def probabilities(logits, temperature=1.0):
    """softmax(logits / T) as float32 numpy (N, C)."""
    logits = torch.as_tensor(logits).float()
    return torch.softmax(logits / float(temperature), 1).numpy()


def ece(probs, labels, bins=BINS):
    """Expected calibration error of the top label: sum over equal-width confidence bins of
    (share of faces in the bin) x |accuracy - mean confidence| in that bin."""
    conf, pred = probs.max(1), probs.argmax(1)
    correct = (pred == labels).astype(np.float64)
    # bin b holds confidences in (b/bins, (b+1)/bins]; a confidence of exactly 0 cannot occur
    idx = np.clip(np.ceil(conf * bins).astype(int) - 1, 0, bins - 1)
    gap = np.abs(np.bincount(idx, correct, bins) - np.bincount(idx, conf, bins))  # per-bin sums
    return float(gap.sum() / len(labels))


def nll(probs, labels):
    return float(-np.mean(np.log(np.clip(probs[np.arange(len(labels)), labels], 1e-12, None))))


def brier(probs, labels):
    """Multi-class Brier score: mean over faces of sum over classes of (p - one-hot)^2."""
    onehot = np.eye(probs.shape[1])[labels]
    return float(np.mean(np.sum((probs - onehot) ** 2, 1)))


def scores(probs, labels):
    return {"ece": ece(probs, labels), "nll": nll(probs, labels), "brier": brier(probs, labels),
            "acc": 100.0 * float(np.mean(probs.argmax(1) == labels))}


def bootstrap_interval(fn, probs, labels, n=1000, seed=0, level=0.95):
    """Percentile interval of ``fn(probs, labels)`` over ``n`` resamples of the faces (with replacement)."""
    rng = np.random.default_rng(seed)
    vals = [fn(probs[i], labels[i]) for i in (rng.integers(0, len(labels), len(labels)) for _ in range(n))]
    lo, hi = np.quantile(vals, [(1 - level) / 2, (1 + level) / 2])
    return float(lo), float(hi)


def reliability_diagram(ax, probs, labels, title, bins=BINS):
    """Bars: accuracy per confidence bin (bins holding no face left empty); the diagonal is perfect
    calibration; red: the gap to each bin's mean confidence; the faces per bin as a faint histogram."""
    conf, correct = probs.max(1), (probs.argmax(1) == labels)
    idx = np.clip(np.ceil(conf * bins).astype(int) - 1, 0, bins - 1)
    n = np.bincount(idx, minlength=bins)
    acc = np.divide(np.bincount(idx, correct, bins), n, out=np.zeros(bins), where=n > 0)
    mean_conf = np.divide(np.bincount(idx, conf, bins), n, out=np.zeros(bins), where=n > 0)
    centres = (np.arange(bins) + 0.5) / bins
    width = 1.0 / bins
    ax.bar(centres, np.where(n > 0, acc, np.nan), width, color="tab:blue", edgecolor="black", label="accuracy")
    ax.bar(centres, np.where(n > 0, np.abs(mean_conf - acc), np.nan), width, bottom=np.minimum(acc, mean_conf),
           color="tab:red", alpha=0.35, edgecolor="tab:red", label="gap to mean confidence")
    ax.bar(centres, n / n.max() * 0.25, width, color="grey", alpha=0.25, label="faces per bin (scaled)")
    ax.plot([0, 1], [0, 1], "k--", lw=1)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("confidence (top label)")
    ax.set_ylabel("accuracy")
    ax.set_title(f"{title}\nECE {ece(probs, labels, bins):.3f}", fontsize=9)
    ax.legend(loc="upper left", fontsize=7)
