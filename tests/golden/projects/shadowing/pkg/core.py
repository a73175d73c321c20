import yaml
from . import requests as local_requests   # pkg/requests.py, relative
