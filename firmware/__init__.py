"""csdformer.firmware"""
