"""placeholder"""
class LockedMap(dict): pass
