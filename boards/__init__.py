"""csdformer.boards"""
