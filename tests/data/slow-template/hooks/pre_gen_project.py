# A template whose generation takes long enough to be interrupted.
import time

time.sleep(60)
