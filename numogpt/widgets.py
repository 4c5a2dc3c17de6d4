"""The lessons' widgets: a tokenizer to type into (lesson 01) and a sampler to play with (lesson 06).

Apart from numogpt.viz, so that the command, which saves pictures, never loads ipywidgets.
"""
import html

import ipywidgets as widgets
import torch

from numogpt.viz import TOKEN_COLOURS, token_pieces


def token_widget(tokenizers, text="Hello world! Tokenizers don't see words: 3.14159 🙂"):
    """A text box; below it, the text coloured by token under each of `tokenizers`
    ({name: tokenizer}), with the token count. Type to see the tokens change."""
    box = widgets.Textarea(value=text, layout=widgets.Layout(width="95%", height="4em"))
    shown = widgets.HTML()

    def render(_=None):
        parts = []
        for name, tok in tokenizers.items():
            try:
                pieces = token_pieces(tok, box.value)
            except ValueError as e:  # e.g. a character the CharTokenizer never saw
                parts.append(f"<b>{html.escape(name)}</b>: {html.escape(str(e))}")
                continue
            spans = "".join(
                f'<span style="background:{TOKEN_COLOURS[i % len(TOKEN_COLOURS)]};white-space:pre-wrap;'
                f'font-family:monospace">{html.escape(p.replace(chr(10), "↵"))}</span>'
                for i, p in enumerate(pieces))
            parts.append(f"<b>{html.escape(name)}</b> ({len(pieces)} tokens)<br>{spans}")
        shown.value = "<br><br>".join(parts)

    box.observe(render, names="value")
    render()
    return widgets.VBox([box, shown])


def sampler_widget(model, tokenizer, prompt="", max_new_tokens=200, seed=0):
    """An interactive sampler: a prompt box, sliders for temperature, top-k and top-p, and a
    button that streams the continuation into the page token by token (numogpt.sample.stream_text).

    top-k 0 and top-p 1 mean "off"; the seed makes each click with the same settings repeatable.
    """
    from numogpt.sample import stream_text  # here, not at the top: lesson 01's widget needs no sampler

    style = {"description_width": "90px"}
    prompt_box = widgets.Textarea(value=prompt, description="prompt", style=style,
                                  layout=widgets.Layout(width="95%"))
    temperature = widgets.FloatSlider(value=0.8, min=0.0, max=2.0, step=0.05, description="temperature", style=style)
    top_k = widgets.IntSlider(value=0, min=0, max=min(tokenizer.vocab_size, 200), description="top-k (0 off)", style=style)
    top_p = widgets.FloatSlider(value=1.0, min=0.05, max=1.0, step=0.05, description="top-p", style=style)
    length = widgets.IntSlider(value=max_new_tokens, min=1, max=1000, description="new tokens", style=style)
    button = widgets.Button(description="sample", button_style="primary")
    page = widgets.HTML()

    def show(prompt_text, new_text):
        page.value = (f"<pre style='white-space: pre-wrap'>{html.escape(prompt_text)}"
                      f"<b style='color: #1f77b4'>{html.escape(new_text)}</b></pre>")

    def sample(_):
        button.disabled = True
        try:
            pieces = stream_text(model, tokenizer, prompt_box.value, length.value, temperature=temperature.value,
                                 top_k=top_k.value or None, top_p=top_p.value,
                                 generator=torch.Generator().manual_seed(seed))
            new_text = ""
            for piece in pieces:
                new_text += piece
                show(prompt_box.value, new_text)
        except ValueError as e:  # e.g. a character the tokenizer has never seen
            page.value = f"<pre style='color: #d62728'>{html.escape(str(e))}</pre>"
        finally:
            button.disabled = False

    button.on_click(sample)
    return widgets.VBox([prompt_box, widgets.HBox([temperature, top_k]), widgets.HBox([top_p, length]), button, page])
