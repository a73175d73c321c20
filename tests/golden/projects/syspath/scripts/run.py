import sys
sys.path.append("lib")
import helpers.dates
import sibling
