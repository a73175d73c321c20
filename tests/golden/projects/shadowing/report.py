import utils                      # local utils.py, never the PyPI project "utils"
import requests                   # local requests.py shadows the PyPI name
from pkg import core
from google.cloud import storage
from mpl_toolkits.mplot3d import Axes3D
from PIL import Image
import cv2
from sklearn.cluster import KMeans
