"""placeholder"""
class RWLock: pass
