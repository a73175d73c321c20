# a scratch script beside the app: not what the image runs
import seaborn
