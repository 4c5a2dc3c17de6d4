"""Every picture the lessons show (their widgets are in numogpt.widgets).

Plots return their matplotlib Figure (closed, so a notebook shows it once when it is the
cell's last value). Colours are fixed, so a figure looks the same on every run.
`show_source` prints the library code a lesson leans on.
"""
import inspect
from pathlib import Path

import matplotlib.pyplot as plt
import torch
import torch.nn as nn
from matplotlib import font_manager, ft2font
from matplotlib.colors import ListedColormap
from matplotlib.patches import FancyBboxPatch, Rectangle

from numogpt import ROOT

_DPI = 80  # small PNGs keep the notebooks light on GitHub


def _subplots(*args, **kwargs):
    """plt.subplots at _DPI, given to each figure: importing viz leaves matplotlib's settings,
    and so the learner's own plots, as they were."""
    return plt.subplots(*args, dpi=_DPI, **kwargs)


def _finished(fig):
    """Lay out and close `fig`: closed, pyplot forgets it, and the notebook shows it once,
    as the cell's value."""
    fig.tight_layout()
    plt.close(fig)
    return fig


# --- the code behind a lesson -----------------------------------------------------------------


def show_source(obj):
    """Print the source of a numogpt function, class or method, and where it lives.

    The lessons use it wherever they lean on library code the learner did not write, so that
    nothing central is a black box.
    """
    obj = inspect.unwrap(obj)  # a decorated function's own code (@torch.no_grad(), @contextmanager), not its wrapper's
    lines, first = inspect.getsourcelines(obj)
    where = Path(inspect.getsourcefile(obj)).resolve().relative_to(ROOT).as_posix()
    print(f"# {where}, line {first}")
    print("".join(lines).rstrip())


# --- lesson 01: the tokenizer -------------------------------------------------------------


TOKEN_COLOURS = ["#ffd8a8", "#b2f2bb", "#a5d8ff", "#fcc2d7", "#d0bfff", "#ffec99", "#99e9f2", "#ced4da"]


def token_pieces(tokenizer, text):
    """The text of each token of `text`, as the tokenizer splits it."""
    return [tokenizer.decode([i]) for i in tokenizer.encode(text)]


def _drawable(piece, charmap):
    """`piece` as the monospace font can draw it: spaces as '·', newlines as '↵', tabs as
    '→', and characters the font lacks as '□' (matplotlib would warn about them)."""
    shown = piece.replace(" ", "·").replace("\n", "↵").replace("\t", "→")
    return "".join(ch if ord(ch) in charmap else "□" for ch in shown)


def plot_tokens(tokenizer, text, title=None, width=64):
    """`text` with one coloured box per token, wrapped at `width` characters.

    Spaces show as '·' and newlines as '↵', so you can see which token holds them.
    A token that holds part of a character shows as '�'.
    """
    font = font_manager.FontProperties(family="DejaVu Sans Mono")
    charmap = ft2font.FT2Font(font_manager.findfont(font)).get_charmap()
    pieces = token_pieces(tokenizer, text)
    # lay the boxes out in rows of at most `width` characters; a newline ends a row
    rows, x = [[]], 0
    for i, piece in enumerate(pieces):
        shown = _drawable(piece, charmap)
        if x + len(shown) > width and rows[-1]:
            rows.append([])
            x = 0
        rows[-1].append((x, shown, TOKEN_COLOURS[i % len(TOKEN_COLOURS)]))
        x += len(shown)
        if piece.endswith("\n"):
            rows.append([])
            x = 0
    fig, ax = _subplots(figsize=(0.13 * width + 0.4, 0.33 * len(rows) + 0.6))
    for r, row in enumerate(rows):
        for x, piece, colour in row:
            ax.add_patch(Rectangle((x, -r - 0.4), len(piece), 0.8, facecolor=colour, edgecolor="white"))
            ax.text(x + 0.05, -r, piece, fontproperties=font, fontsize=10, va="center")
    ax.set_xlim(0, width)
    ax.set_ylim(-len(rows) + 0.5, 0.5)
    ax.axis("off")
    ax.set_title(title or f"{len(pieces)} tokens, {len(text)} characters", fontsize=10, loc="left")
    return _finished(fig)


def plot_bpe_training(tokenizer, n_bytes, n_first=12):
    """How BPE compresses its training text as merges are learned, and its first merges.

    `tokenizer` is a BPETokenizer just trained (its `merge_counts` say how often each merge
    applied) on a text of `n_bytes` bytes. Each application removes one token, so after k
    merges the text is n_bytes - (the first k counts) tokens long.
    """
    lengths = [n_bytes]
    for count in tokenizer.merge_counts:
        lengths.append(lengths[-1] - count)
    fig, (ax, ax_list) = _subplots(1, 2, figsize=(9, 3.2), width_ratios=[3, 2])
    ax.plot(range(len(lengths)), [n_bytes / n for n in lengths], color="tab:blue")
    ax.set_xlabel("merges learned")
    ax.set_ylabel("bytes per token")
    ax.set_title("compression of the training text", fontsize=10)
    ax.grid(alpha=0.3)
    text = {i: b.decode("utf-8", errors="replace") for i, b in tokenizer.vocab.items()}
    lines = [f"{new:>4}: {text[a]!r:>7} + {text[b]!r:<7} -> {text[new]!r:<9} x{count}"
             for ((a, b), new), count in zip(tokenizer.merges.items(), tokenizer.merge_counts)]
    ax_list.text(0, 1, "\n".join(lines[:n_first]), family="DejaVu Sans Mono", fontsize=8, va="top")
    ax_list.set_title(f"the first {n_first} merges", fontsize=10)
    ax_list.axis("off")
    return _finished(fig)


def plot_tokens_per_word(tokenizers, samples):
    """Bar chart: tokens per word (whitespace-separated) of each text in `samples`
    ({name: text}) under each tokenizer in `tokenizers` ({name: tokenizer})."""
    fig, ax = _subplots(figsize=(1.3 * len(samples) + 2, 3.2))
    width = 0.8 / len(tokenizers)
    for k, (name, tok) in enumerate(tokenizers.items()):
        ratios = [len(tok.encode(text)) / len(text.split()) for text in samples.values()]
        xs = [i + (k - (len(tokenizers) - 1) / 2) * width for i in range(len(samples))]
        bars = ax.bar(xs, ratios, width, label=name, color=f"C{k}")
        ax.bar_label(bars, fmt="%.1f", fontsize=7)
    ax.set_xticks(range(len(samples)), labels=list(samples), fontsize=9)
    ax.set_ylabel("tokens per word")
    ax.set_title("the same tokenizer spends more tokens on some texts", fontsize=10)
    ax.legend(fontsize=8)
    return _finished(fig)


# --- lesson 02: the dataset ---------------------------------------------------------------


_X_COLOUR, _Y_COLOUR, _PAD_COLOUR = "#cfe2f3", "#fce5cd", "#e8e8e8"  # input, target, padding


def _token_box(ax, col, row, text, colour):
    ax.add_patch(Rectangle((col - 0.45, row - 0.35), 0.9, 0.7, facecolor=colour, edgecolor="#888888"))
    ax.text(col, row, text, ha="center", va="center", fontsize=8, family="monospace")


def plot_block_shift(tokens):
    """One training example drawn as tokens: x is tokens[:-1], y is tokens[1:], one to the right.

    `tokens` are the T + 1 token strings of a window of the text (e.g. decoded ids). Each
    arrow goes from x[t] to y[t]: having read x[0..t], the model must guess y[t].
    """
    T = len(tokens) - 1
    labels = [repr(t)[1:-1].replace(" ", "·") for t in tokens]  # show spaces and newlines: '·the', '\\n'
    fig, ax = _subplots(figsize=(0.95 * (T + 1) + 0.8, 2.2))
    for t in range(T):
        _token_box(ax, t, 1, labels[t], _X_COLOUR)
        _token_box(ax, t + 1, 0, labels[t + 1], _Y_COLOUR)
        ax.annotate("", xy=(t + 0.8, 0.3), xytext=(t + 0.2, 0.7), arrowprops=dict(arrowstyle="->", color="#555555"))
    ax.text(-0.65, 1, "x", ha="right", va="center", fontsize=11, weight="bold")
    ax.text(0.35, 0, "y", ha="right", va="center", fontsize=11, weight="bold")
    ax.set_xlim(-1, T + 0.6)
    ax.set_ylim(-0.6, 1.6)
    ax.axis("off")
    ax.set_title(f"one block of T = {T}: y[t] is the token after x[t], so y is x one step to the right", fontsize=10)
    return _finished(fig)


def plot_stride_coverage(n_ids, block_size, strides):
    """Where the blocks of each stride fall on a text of `n_ids` token ids.

    One panel per stride, one bar per block: x covers block_size ids, and its target
    reaches one further (the thin tail). A stride below block_size overlaps the blocks.
    """
    all_starts = [range(0, n_ids - block_size, stride) for stride in strides]  # the last target id must exist
    rows = [len(starts) + 1 for starts in all_starts]
    fig, axes = _subplots(len(strides), 1, figsize=(7, 0.9 + 0.2 * sum(rows)), sharex=True, squeeze=False,
                             height_ratios=rows)
    for ax, stride, starts in zip(axes[:, 0], strides, all_starts):
        for row, s in enumerate(starts):
            ax.barh(row, block_size, left=s, height=0.7, color="tab:blue", edgecolor="white")
            ax.barh(row, 1, left=s + block_size, height=0.3, color="tab:orange")
        ax.set_ylim(len(starts) - 0.4, -0.6)
        ax.set_yticks([])
        ax.set_ylabel(f"stride {stride}", rotation=0, ha="right", va="center", fontsize=9)
        ax.text(1.01, 0.5, f"{len(starts)} blocks", transform=ax.transAxes, fontsize=9, va="center")
    last = axes[-1, 0]
    last.set_xlim(0, n_ids)
    last.set_xlabel(f"position in a text of {n_ids} ids (blue: x of block_size {block_size}; orange: the extra target id)")
    return _finished(fig)


def plot_block_fill(X, pad_id, rows=24):
    """How full word-aligned blocks are: real tokens in colour, padding in grey.

    Left: the first `rows` blocks of X (N, T), one row each. Right: how many real
    tokens each block holds, over all N blocks.
    """
    real = (X != pad_id)  # (N, T)
    filled = real.sum(dim=1)  # (N,)
    N, T = X.shape
    fig, (left, right) = _subplots(1, 2, figsize=(9, 3.2), width_ratios=[3, 2])
    left.imshow(real[:rows].int(), cmap=ListedColormap([_PAD_COLOUR, "tab:blue"]), vmin=0, vmax=1, aspect="auto",
                interpolation="nearest")
    left.set_xlabel("position in the block")
    left.set_ylabel("block")
    left.set_title(f"first {min(rows, N)} blocks: blue = word tokens, grey = padding", fontsize=9)
    right.hist(filled.tolist(), bins=range(0, T + 2), color="tab:blue", align="left")
    right.set_xlabel("real tokens in a block")
    right.set_ylabel("blocks")
    right.set_title(f"all {N} blocks: {real.float().mean().item():.0%} of positions are real tokens", fontsize=9)
    return _finished(fig)


# --- lesson 03: attention -----------------------------------------------------------------


def _label_token_axes(ax, tokens, rows=True):
    ax.set_xticks(range(len(tokens)), labels=tokens, rotation=90, fontsize=8)
    ax.set_yticks(range(len(tokens)), labels=tokens if rows else [], fontsize=8)


def plot_causal_mask(tokens):
    """The causal mask over `tokens`: row i (a query) may look at columns (keys) 0..i only.

    Blocked cells are the ones set to -inf before the softmax, so they get weight 0.
    """
    T = len(tokens)
    allowed = [[1 if j <= i else 0 for j in range(T)] for i in range(T)]
    fig, ax = _subplots(figsize=(0.4 * T + 1.6, 0.4 * T + 1.2))
    ax.imshow(allowed, cmap=ListedColormap(["#e8e8e8", "#2e8b57"]), vmin=0, vmax=1)
    for i in range(T):
        for j in range(i + 1, T):
            ax.text(j, i, "-inf", ha="center", va="center", fontsize=7, color="#777777")
    _label_token_axes(ax, tokens)
    ax.set_xlabel("key: the token looked at")
    ax.set_ylabel("query: the token looking")
    ax.set_title("causal mask: green may look, grey is -inf", fontsize=10)
    return _finished(fig)


def plot_attention_maps(weights, tokens, title="attention weights per head", head_titles=None):
    """One heatmap per head: weights (H, T, T), row = the query token, column = the key token.

    head_titles: a title for each head (default "head 0", "head 1", ...).
    """
    H, T = weights.shape[0], len(tokens)
    head_titles = head_titles or [f"head {h}" for h in range(H)]
    fig, axes = _subplots(1, H, figsize=(0.3 * T * H + 1.6, 0.3 * T + 1.4), squeeze=False, layout="constrained")
    for h, ax in enumerate(axes[0]):
        image = ax.imshow(weights[h], cmap="viridis", vmin=0.0, vmax=1.0)
        _label_token_axes(ax, tokens, rows=h == 0)
        ax.set_title(head_titles[h], fontsize=9)
    fig.colorbar(image, ax=list(axes[0]), shrink=0.8, label="weight")
    fig.suptitle(title, fontsize=10)
    plt.close(fig)
    return fig


def plot_softmax_saturation(head_sizes, unscaled, scaled):
    """The largest softmax weight in a row (on average) against the head size D,
    for scores q·k as they are (`unscaled`) and divided by sqrt(D) (`scaled`)."""
    fig, ax = _subplots(figsize=(5, 3))
    ax.plot(head_sizes, unscaled, "o-", color="tab:red", label="q·k")
    ax.plot(head_sizes, scaled, "o-", color="tab:blue", label="q·k / sqrt(D)")
    ax.set_xscale("log", base=2)
    ax.set_ylim(0, 1.05)
    ax.set_xlabel("head size D")
    ax.set_ylabel("largest weight in a row")
    ax.set_title("without the scale, softmax becomes one-hot", fontsize=10)
    ax.legend()
    return _finished(fig)


# --- lesson 04: the GPT model -------------------------------------------------------------

_PART_COLOURS = {  # one colour per part of a GPT, shared by the lesson's pictures
    "token embedding": "tab:blue",
    "position embedding": "tab:cyan",
    "attention": "tab:orange",
    "MLP": "tab:green",
    "layer norms": "tab:purple",
    "residual": "tab:grey",
}


def _describe(module):
    """What a leaf module is, in a few characters, e.g. 'Linear 64 -> 192'."""
    if isinstance(module, nn.Embedding):
        return f"Embedding {module.num_embeddings} x {module.embedding_dim}"
    if isinstance(module, nn.Linear):
        return f"Linear {module.in_features} -> {module.out_features}" + ("" if module.bias is not None else ", no bias")
    if isinstance(module, nn.LayerNorm):
        return f"LayerNorm {module.normalized_shape[0]}"
    if isinstance(module, nn.GELU):
        return "GELU (exact)" if module.approximate == "none" else f"GELU ({module.approximate})"
    return type(module).__name__


def _architecture_rows(model):
    """(name, description, parameters, part) from the input to the logits, walking the model's modules."""
    config, t = model.config, model.transformer
    rows = [("idx", "token ids (B, T)", None, None)]
    rows += [(f"transformer.{n}", _describe(t[n]), t[n].weight.numel(), part)
             for n, part in (("wte", "token embedding"), ("wpe", "position embedding"))]
    rows.append(("+", "token + position: the residual stream (B, T, C)", None, "residual"))
    for name, module in t.h[0].named_modules():  # block 0 stands for all: they share one shape
        if list(module.children()) or isinstance(module, nn.Dropout):
            continue  # containers are drawn through their leaves; dropout has nothing to learn
        part = "attention" if name.startswith("attn") else "MLP" if name.startswith("mlp") else "layer norms"
        rows.append((f"h[i].{name}", _describe(module), sum(p.numel() for p in module.parameters()), part))
        if name == "attn.c_attn":
            D = config.n_embd // config.n_head
            rows.append(("", f"{config.n_head} heads x {D} dims, causal (B, H, T, T)", None, "attention"))
        if name.endswith("c_proj"):
            rows.append(("+", "add back into the residual stream", None, "residual"))
    rows.append(("transformer.ln_f", _describe(t.ln_f), sum(p.numel() for p in t.ln_f.parameters()), "layer norms"))
    tied = model.lm_head.weight is t.wte.weight
    rows.append(("lm_head", _describe(model.lm_head) + (" (= wte, tied)" if tied else ""), 0 if tied else None, "token embedding"))
    rows.append(("logits", f"(B, T, {config.vocab_size}): a score per next token", None, None))
    return rows


def plot_architecture(model):
    """The GPT drawn from the model itself: one box per layer, with its size and parameters.

    The blocks share one shape, so block 0's layers are drawn once inside a frame marked
    "x n_layer"; the '+' rows are where a block adds its result to the residual stream.
    """
    rows = _architecture_rows(model)
    n_layer = model.config.n_layer
    in_block = [i for i, r in enumerate(rows) if r[0].startswith("h[i]")]
    first, last = in_block[0], in_block[-1] + 1  # the '+' after mlp.c_proj closes the block
    height = 0.42 * len(rows) + 0.6
    fig, ax = _subplots(figsize=(7.2, height))
    ax.set_xlim(0, 10)
    ax.set_ylim(len(rows) - 0.3, -0.9)
    ax.axis("off")
    ax.add_patch(FancyBboxPatch((0.1, first - 0.45), 9.8, last - first + 0.9, boxstyle="round,pad=0.02",
                                fill=False, linestyle="--", edgecolor="grey"))
    ax.text(5.0, first - 0.45, f" x {n_layer} blocks (counts per block) ", ha="center", va="center", fontsize=8.5,
            color="dimgrey", bbox=dict(facecolor="white", edgecolor="none", pad=0.5))
    for y, (name, description, params, part) in enumerate(rows):
        colour = _PART_COLOURS.get(part, "lightgrey")
        ax.text(0.3, y, name, ha="left", va="center", fontsize=8.5, family="monospace")
        ax.text(3.3, y, description, ha="left", va="center", fontsize=8.5,
                bbox=dict(boxstyle="round,pad=0.25", facecolor=colour, alpha=0.25, edgecolor=colour))
        if params is not None:
            ax.text(9.7, y, f"{params:,}", ha="right", va="center", fontsize=8.5)
    ax.text(9.7, -0.7, "parameters", ha="right", va="center", fontsize=8.5, color="dimgrey")
    ax.set_title(f"GPT: {n_layer} layers, {model.config.n_head} heads, {model.config.n_embd} dims, "
                 f"{model.num_params():,} parameters", fontsize=10)
    return _finished(fig)


def plot_parameter_shares(counts_by_model):
    """Where the parameters live: one bar per model, split by part (shares of its total).

    counts_by_model: {label: model.parameter_counts()}.
    """
    labels = list(counts_by_model)
    fig, ax = _subplots(figsize=(7.5, 0.55 * len(labels) + 1.5))
    for row, label in enumerate(labels):
        counts = counts_by_model[label]
        total, left = sum(counts.values()), 0.0
        for part, n in counts.items():
            share = n / total
            ax.barh(row, share, left=left, color=_PART_COLOURS[part], label=part if row == 0 else None)
            if share > 0.07:
                ax.text(left + share / 2, row, f"{share:.0%}", ha="center", va="center", fontsize=8, color="white")
            left += share
    ax.set_yticks(range(len(labels)), labels=[f"{k}\n{sum(v.values()):,}" for k, v in counts_by_model.items()], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.set_xlabel("share of the parameters")
    ax.legend(ncol=5, fontsize=7.5, loc="upper center", bbox_to_anchor=(0.5, -0.3 if len(labels) < 3 else -0.18))
    return _finished(fig)


def plot_residual_std(std_by_label):
    """The spread (std) of the residual stream after the embeddings (0) and after each block.

    std_by_label: {label: [std after embeddings, after block 1, ...]}.
    """
    fig, ax = _subplots(figsize=(5.5, 3.2))
    for (label, stds), colour in zip(std_by_label.items(), ["tab:red", "tab:blue", "tab:green"]):
        ax.plot(range(len(stds)), stds, "o-", markersize=3, color=colour, label=label)
    ax.set_xlabel("blocks passed")
    ax.set_ylabel("std of the residual stream")
    ax.set_ylim(bottom=0)
    ax.set_title("residual stream at initialisation", fontsize=10)
    ax.legend(fontsize=8)
    return _finished(fig)


def _char_kind(label):
    if len(label) != 1:
        return "other"
    if label in "aeiou":
        return "vowel"
    if label.isalpha():
        return "capital" if label.isupper() else "consonant"
    return "digit" if label.isdigit() else "space and punctuation"


def plot_embeddings_2d(weight, labels, title="token embeddings, first two principal components"):
    """Each row of `weight` (V, C) as a point: its projection on the two main directions (PCA).

    labels: one string per row; single characters are coloured by kind (vowel, consonant, ...).
    """
    centred = weight.detach().float() - weight.detach().float().mean(dim=0)
    _, _, Vh = torch.linalg.svd(centred, full_matrices=False)  # rows of Vh: the principal directions
    axes = Vh[:2] * Vh[:2].gather(1, Vh[:2].abs().argmax(dim=1, keepdim=True)).sign()  # fix SVD's sign
    xy = (centred @ axes.T).numpy()  # (V, 2)
    colours = {"vowel": "tab:red", "consonant": "tab:blue", "capital": "tab:purple", "digit": "tab:green",
               "space and punctuation": "tab:orange", "other": "tab:grey"}
    fig, ax = _subplots(figsize=(6, 4.6))
    seen = set()
    for (x, y), label in zip(xy, labels):
        kind = _char_kind(label)
        ax.scatter(x, y, s=12, color=colours[kind], label=None if kind in seen else kind)
        seen.add(kind)
        shown = {" ": "sp", "\n": "\\n", "\t": "\\t"}.get(label, label)
        ax.annotate(shown, (x, y), fontsize=8, xytext=(2, 2), textcoords="offset points")
    ax.set_xlabel("component 1")
    ax.set_ylabel("component 2")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=7.5)
    return _finished(fig)


# --- lesson 05: training ------------------------------------------------------------------


def plot_lr_schedule(lrs, warmup_iters=None, title="learning rate: linear warmup, then cosine decay"):
    """The learning rate at every step (`lrs`, e.g. [lr_at(s, config) for s in range(n)])."""
    fig, ax = _subplots(figsize=(5.5, 3))
    ax.plot(range(len(lrs)), lrs, color="tab:blue")
    if warmup_iters:
        ax.axvline(warmup_iters, color="#999999", linestyle="--", linewidth=1)
        ax.text(warmup_iters, 0.5 * max(lrs), " end of warmup", fontsize=8, color="#666666")
    ax.set_xlabel("step")
    ax.set_ylabel("learning rate")
    ax.ticklabel_format(axis="y", style="sci", scilimits=(0, 0))
    ax.set_title(title, fontsize=10)
    return _finished(fig)


_LINE_STYLES = ["-", "--", ":", "-."]  # one per run, so runs that agree stay visible


def _running_mean(losses):
    window = max(1, len(losses) // 25)  # a mean over ~4% of the run smooths the batch noise
    return [sum(losses[max(0, i - window + 1):i + 1]) / len(losses[max(0, i - window + 1):i + 1])
            for i in range(len(losses))]


def plot_loss_curves(runs, which=("train", "val"), baselines=None, target=None, xlabel="step",
                     title="training and validation loss"):
    """Loss curves of one run, or of several on one axis, from `train` histories:
    {"train": [(step, loss), ...], "val": [(step, loss), ...]}.

    runs: one history, or {label: history}. One run shows each batch's loss (faint), its running
    mean and the validation loss at every evaluation (dots). Several runs show each one's running
    mean and validation dots in its own colour, the lines dashed a little differently so that
    runs which agree stay visible on top of each other.
    which: the curves to draw ("train", "val"); a history without one of them draws what it has.
    baselines: {label: loss}, each a grey horizontal line. target: a loss drawn as a dashed line,
    so the first dot below it is the time (or step) to that loss.
    xlabel: what the histories' first numbers are (steps, or seconds for a race against time).
    """
    one_run = "train" in runs or "val" in runs
    fig, ax = _subplots(figsize=(6.4, 3.6))
    for n, (label, history) in enumerate(({"": runs} if one_run else runs).items()):
        colour, style = f"C{n}", _LINE_STYLES[n % len(_LINE_STYLES)]

        def named(curve):  # its legend entry
            return curve if one_run else label if len(which) == 1 else f"{label}, {curve}"

        if "train" in which and history.get("train"):
            steps, losses = zip(*history["train"])
            if one_run:
                ax.plot(steps, losses, color="tab:blue", alpha=0.25, linewidth=0.8)
            ax.plot(steps, _running_mean(losses), style, color="tab:blue" if one_run else colour,
                    linewidth=1.5 if one_run else max(0.8, 2.2 - 0.5 * n), label=named("train (running mean)"))
        if "val" in which and history.get("val"):
            steps, losses = zip(*history["val"])
            ax.plot(steps, losses, "o-", color="tab:orange" if one_run else colour, markersize=4 if one_run else 3,
                    label=named("validation"))
    for i, (label, loss) in enumerate((baselines or {}).items()):
        ax.axhline(loss, color="grey", linestyle=_LINE_STYLES[1 + i % 3], linewidth=1, label=f"{label}: {loss:.2f}")
    if target is not None:
        ax.axhline(target, color="#999999", linestyle="--", linewidth=1)
        ax.text(ax.get_xlim()[0], target, f" {target}", va="bottom", fontsize=8, color="#666666")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("cross-entropy loss")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8)
    return _finished(fig)


def plot_direction_strengths(update_strengths, title="how hard an update pushes along each direction"):
    """Each update's singular values, largest first, as shares of its largest, e.g.
    {"the gradient": torch.linalg.svdvals(g), "orthogonalized (Muon)": torch.linalg.svdvals(u @ vh)}:
    a gradient leans on a few directions; an orthogonal update pushes along all of them alike."""
    fig, ax = _subplots(figsize=(6, 3))
    for (name, strengths), colour in zip(update_strengths.items(), ("tab:blue", "tab:orange")):
        ax.plot((strengths / strengths.max()).tolist(), "o-", color=colour, markersize=3, label=name)
    ax.set_ylim(0, 1.1)
    ax.set_xlabel("direction (singular vector), strongest first")
    ax.set_ylabel("push, as a share of the strongest")
    ax.set_title(title, fontsize=10)
    ax.legend(loc="center right")
    return _finished(fig)


# --- lesson 06: sampling ------------------------------------------------------------------


def token_label(text):
    """A token's text made visible on an axis: spaces as ␣, newlines as ⏎, other control bytes as \\xNN."""
    text = text.replace(" ", "␣").replace("\n", "⏎")
    return "".join(ch if ch.isprintable() else f"\\x{ord(ch):02x}" for ch in text) or "∅"


def _bars(ax, probs, labels, kept=None, color="tab:blue"):
    colors = [color if kept is None or kept[i] else "lightgrey" for i in range(len(probs))]
    ax.bar(range(len(probs)), probs, color=colors)
    ax.set_xticks(range(len(probs)), labels=[token_label(t) for t in labels], fontsize=8)
    ax.set_ylim(0, 1)


def plot_next_token_probs(probs, labels, top=15, kept=None, title="next-token probabilities"):
    """Bars of the `top` most likely next tokens: probs (V,), labels = the V token texts.

    With `kept` (V,) booleans, the tokens a filter removed are drawn grey.
    """
    order = torch.argsort(probs, descending=True)[:top].tolist()
    fig, ax = _subplots(figsize=(0.38 * len(order) + 1.6, 2.6))
    _bars(ax, [probs[i].item() for i in order], [labels[i] for i in order],
          None if kept is None else [bool(kept[i]) for i in order])
    ax.set_ylabel("probability")
    ax.set_title(title, fontsize=10)
    return _finished(fig)


def plot_temperatures(logits, labels, temperatures=(0.5, 1.0, 2.0), top=12):
    """The same next-token distribution at several temperatures: softmax(logits / T).

    The tokens are the `top` most likely ones, in the same order in every panel.
    """
    order = torch.argsort(logits, descending=True)[:top].tolist()
    fig, axes = _subplots(1, len(temperatures), figsize=(3.4 * len(temperatures), 2.6), sharey=True)
    for ax, t in zip(axes, temperatures):
        probs = torch.softmax(logits / t, dim=-1)
        _bars(ax, [probs[i].item() for i in order], [labels[i] for i in order], color="tab:orange")
        ax.set_title(f"T = {t:g}", fontsize=10)
    axes[0].set_ylabel("probability")
    fig.suptitle("low temperature sharpens, high temperature flattens", fontsize=10)
    return _finished(fig)


def plot_time_per_token(ms_with_cache, ms_without_cache, prompt_length, block_size=None):
    """Milliseconds per generated token along the sequence, with and without the KV cache.

    With `block_size`, a dashed line marks where the text outgrows the context.
    """
    lengths = range(prompt_length, prompt_length + len(ms_with_cache))  # the text's length at each step
    fig, ax = _subplots(figsize=(5.5, 3))
    ax.plot(lengths, ms_without_cache, color="tab:red", label="no cache: recompute the whole past")
    ax.plot(lengths, ms_with_cache, color="tab:blue", label="KV cache: run only the new token")
    if block_size is not None:
        ax.axvline(block_size, color="grey", linestyle="--", linewidth=1)
        ax.text(block_size, ax.get_ylim()[1] * 0.97, " context full", color="grey", fontsize=8, va="top")
    ax.set_xlabel("length of the text so far (tokens)")
    ax.set_ylabel("ms per token")
    ax.set_ylim(bottom=0)
    ax.set_title("the cost of one generation step", fontsize=10)
    ax.legend(fontsize=8)
    return _finished(fig)


# --- lesson 07: algorithms ----------------------------------------------------------------


def plot_accuracy_curves(curves, title="exact match on held-out problems"):
    """Exact match against step, one line per run: curves = {label: [(step, accuracy), ...]}."""
    fig, ax = _subplots(figsize=(6, 3.4))
    for label, points in curves.items():
        steps, accuracies = zip(*points)
        ax.plot(steps, [100 * a for a in accuracies], "o-", markersize=3, label=label)
    ax.set_xlabel("step")
    ax.set_ylabel("exact match (%)")
    ax.set_ylim(0, 100)
    ax.set_title(title, fontsize=10)
    ax.legend()
    return _finished(fig)


# --- lesson 08: scaling ----------------------------------------------------------------------

_PROCESS_COLOURS = ["#a5d8ff", "#b2f2bb", "#ffd8a8", "#d0bfff"]


def plot_data_parallel(world_size=2, grad_accum=2):
    """Data parallelism as a picture: one global batch of rows, cut into world_size x grad_accum
    slices; each process runs its own slices through its own copy of the model, adding up the
    gradients; an all-reduce averages them; every copy then takes the same optimizer step."""
    width, gap = 3.0, 0.4  # of one process's column
    fig, ax = _subplots(figsize=(1.2 + 2.3 * world_size, 3.2))
    for rank in range(world_size):
        x0, colour = rank * (width + gap), _PROCESS_COLOURS[rank % len(_PROCESS_COLOURS)]
        for j in range(grad_accum):  # this process's slices of the global batch
            ax.add_patch(Rectangle((x0 + j * width / grad_accum, 2.4), 0.92 * width / grad_accum, 0.5,
                                   facecolor=colour, edgecolor="#888888"))
            ax.text(x0 + (j + 0.46) * width / grad_accum, 2.65, f"slice {rank * grad_accum + j}",
                    ha="center", va="center", fontsize=8)
        ax.annotate("", xy=(x0 + width / 2, 1.75), xytext=(x0 + width / 2, 2.35),
                    arrowprops=dict(arrowstyle="->", color="#777777"))
        ax.add_patch(FancyBboxPatch((x0, 1.05), width, 0.65, boxstyle="round,pad=0.04", facecolor=colour,
                                    edgecolor="#888888"))
        ax.text(x0 + width / 2, 1.375, f"process {rank}: its copy of the model\nforward + backward per slice,\n"
                                       f"gradients add up", ha="center", va="center", fontsize=8)
        ax.annotate("", xy=(x0 + width / 2, 0.55), xytext=(x0 + width / 2, 1.0),
                    arrowprops=dict(arrowstyle="<->", color="#777777"))
    total = world_size * (width + gap) - gap
    ax.add_patch(FancyBboxPatch((0, 0.0), total, 0.5, boxstyle="round,pad=0.04", facecolor="#ffec99",
                                edgecolor="#888888"))
    ax.text(total / 2, 0.25, "all-reduce: every process gets the average gradient, and all take the same step",
            ha="center", va="center", fontsize=8)
    ax.text(total / 2, 3.1, f"one global batch (--batch-size), cut into {world_size} x {grad_accum} slices",
            ha="center", va="center", fontsize=9)
    ax.set_xlim(-0.2, total + 0.2)
    ax.set_ylim(-0.2, 3.3)
    ax.axis("off")
    return _finished(fig)
