"""Scratch exploration: never part of the image (train.py does not import it)."""
import matplotlib.pyplot as plt
import seaborn as sns
import tensorflow as tf

sns.set_theme()
plt.plot([1, 2, 3])
print(tf.__version__)
