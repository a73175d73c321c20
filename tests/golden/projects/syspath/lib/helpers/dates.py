from dateutil import parser
