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


# --- lesson 04: the GPT model -------------------------------------------------------------


# --- lesson 05: training ------------------------------------------------------------------


# --- lesson 06: sampling ------------------------------------------------------------------
