import matplotlib.pyplot as plt


def show(x):
    plt.plot(x)
