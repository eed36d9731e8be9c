"""minisbert.util's public face (util/__init__.py): its names are sentence_transformers.util's, bar one of
minisbert's own, and each is the function its submodule defines (one name per function, no wrapper)."""

import sentence_transformers.util as reference_util

import minisbert.util as util
from minisbert.util import multi_vector, quantization, retrieval, similarity

MINISBERT_OWN = {"multi_vector_search"}  # semantic_search over a multi-vector corpus: sentence-transformers has none


def test_public_names_are_sentence_transformers_names():
    assert set(util.__all__) - MINISBERT_OWN <= set(reference_util.__all__)
    assert len(util.__all__) == len(set(util.__all__))


def test_each_public_name_is_its_submodules_function():
    submodules = (similarity, retrieval, multi_vector, quantization)
    for name in util.__all__:
        defined = [module for module in submodules if name in module.__all__]
        assert len(defined) == 1, name
        assert getattr(util, name) is getattr(defined[0], name)
        assert getattr(util, name).__module__ == defined[0].__name__
