import attr
