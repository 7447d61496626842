"""Static tables of the demo data set (see service/demo.py) and the demo receipt."""
