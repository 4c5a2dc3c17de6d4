"""Every picture and widget the lessons show.

Plots return their matplotlib Figure (closed, so a notebook shows it once when it is the
cell's last value); widgets return an ipywidgets object. Colours are fixed, so a figure
looks the same on every run.
"""
import matplotlib

matplotlib.rcParams["figure.dpi"] = 80  # small PNGs keep the notebooks light on GitHub


# --- lesson 01: the tokenizer -------------------------------------------------------------


# --- lesson 02: the dataset ---------------------------------------------------------------


# --- lesson 03: attention -----------------------------------------------------------------


def _label_token_axes(ax, tokens, rows=True):
    ax.set_xticks(range(len(tokens)), labels=tokens, rotation=90, fontsize=8)
    ax.set_yticks(range(len(tokens)), labels=tokens if rows else [], fontsize=8)


def plot_causal_mask(tokens):
    """The causal mask over `tokens`: row i (a query) may look at columns (keys) 0..i only.

    Blocked cells are the ones set to -inf before the softmax, so they get weight 0.
    """
    import matplotlib.pyplot as plt

    T = len(tokens)
    allowed = [[1.0 if j <= i else 0.0 for j in range(T)] for i in range(T)]
    fig, ax = plt.subplots(figsize=(0.4 * T + 1.6, 0.4 * T + 1.2))
    ax.imshow(allowed, cmap="Greens", vmin=-0.4, vmax=1.2)
    for i in range(T):
        for j in range(i + 1, T):
            ax.text(j, i, "-inf", ha="center", va="center", fontsize=7, color="grey")
    _label_token_axes(ax, tokens)
    ax.set_xlabel("key: the token looked at")
    ax.set_ylabel("query: the token looking")
    ax.set_title("causal mask: green may look, -inf may not", fontsize=10)
    fig.tight_layout()
    plt.close(fig)
    return fig


def plot_attention_maps(weights, tokens, title="attention weights per head"):
    """One heatmap per head: weights (H, T, T), row = the query token, column = the key token."""
    import matplotlib.pyplot as plt

    H, T = weights.shape[0], len(tokens)
    fig, axes = plt.subplots(1, H, figsize=(0.3 * T * H + 1.2, 0.3 * T + 1.6), squeeze=False)
    for h, ax in enumerate(axes[0]):
        image = ax.imshow(weights[h], cmap="viridis", vmin=0.0, vmax=1.0)
        _label_token_axes(ax, tokens, rows=h == 0)
        ax.set_title(f"head {h}", fontsize=9)
    fig.colorbar(image, ax=list(axes[0]), shrink=0.8, label="weight")
    fig.suptitle(title, fontsize=10)
    plt.close(fig)
    return fig


def plot_softmax_saturation(head_sizes, unscaled, scaled):
    """The largest softmax weight in a row (on average) against the head size D,
    for scores q·k as they are (`unscaled`) and divided by sqrt(D) (`scaled`)."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3))
    ax.plot(head_sizes, unscaled, "o-", color="tab:red", label="q·k")
    ax.plot(head_sizes, scaled, "o-", color="tab:blue", label="q·k / sqrt(D)")
    ax.set_xscale("log", base=2)
    ax.set_ylim(0, 1.05)
    ax.set_xlabel("head size D")
    ax.set_ylabel("largest weight in a row")
    ax.set_title("without the scale, softmax becomes one-hot", fontsize=10)
    ax.legend()
    fig.tight_layout()
    plt.close(fig)
    return fig


# --- lesson 04: the GPT model -------------------------------------------------------------


# --- lesson 05: training ------------------------------------------------------------------


# --- lesson 06: sampling ------------------------------------------------------------------
