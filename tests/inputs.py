"""Hard inputs for parity tests: short and long, many scripts, accents, emoji, whitespace, empty."""

from pathlib import Path

CORPUS = Path(__file__).resolve().parent / "data" / "stdlib_sentences-300.txt"  # PSF licence: tests/data/README.md

HARD_TEXTS = [
    "The weather is lovely today.",
    "It's so sunny outside!",
    "He drove to the stadium.",
    "",
    " ",
    "   \t\n  ",
    "a",
    "I",
    "?!",
    "Hello, world.",
    "  leading and trailing spaces  ",
    "multiple     inner     spaces\tand\ttabs\nand\nnewlines",
    "UPPER CASE TEXT SHOULD BE LOWERCASED BY THE TOKENIZER",
    "Café, naïve, résumé, façade, jalapeño, Ångström",
    "Crème brûlée à la française, s'il vous plaît.",
    "Der schnelle braune Fuchs springt über den faulen Hund.",
    "El rápido zorro marrón salta sobre el perro perezoso.",
    "Быстрая коричневая лиса прыгает через ленивую собаку.",
    "Η γρήγορη καφέ αλεπού πηδάει πάνω από τον τεμπέλη σκύλο.",
    "敏捷的棕色狐狸跳过了懒狗。",
    "素早い茶色の狐がのろまな犬を飛び越える。",
    "빠른 갈색 여우가 게으른 개를 뛰어넘는다.",
    "الثعلب البني السريع يقفز فوق الكلب الكسول.",
    "השועל החום המהיר קופץ מעל הכלב העצלן.",
    "तेज़ भूरी लोमड़ी आलसी कुत्ते के ऊपर कूदती है।",
    "สุนัขจิ้งจอกสีน้ำตาลกระโดดข้ามสุนัขขี้เกียจ",
    "Nhanh chóng con cáo nâu nhảy qua con chó lười.",
    "I love pizza 🍕🍕🍕 and ice cream 🍦!",
    "👍",
    "🇫🇷🇩🇪🇯🇵 flags and 👨‍👩‍👧‍👦 families",
    "Math: ∑ᵢ xᵢ² ≤ ∞, ∀ε>0 ∃δ>0; π≈3.14159",
    "Code: def f(x): return x ** 2  # square",
    "https://example.com/path?query=1&other=two#fragment",
    "email@example.com, +1 (555) 123-4567, $1,234.56, 50%",
    "Zero\u200bwidth\u200bspaces and a soft\u00adhyphen",
    "Control\x07chars\x1band\ufeffBOM",
    "supercalifragilisticexpialidocious antidisestablishmentarianism",
    "The the the the the the the the the the",
    "A" * 300,
    "word " * 400,
    "Long text: " + "The quick brown fox jumps over the lazy dog. " * 60,
    "Mixed: English, 中文, русский, العربية, 한국어, emoji 🎉 in one sentence.",
    "What is the capital of France?",
    "Paris is the capital and most populous city of France.",
    "A man is playing a guitar.",
    "A woman is slicing an onion.",
    "Two dogs are running through a field of snow.",
    "Stocks fell sharply on Monday after the central bank raised interest rates.",
    "¿Dónde está la biblioteca?",
    "Ça va? Oui, ça va très bien, merci!",
]


def corpus_sentences(count, start=0):
    """``count`` natural English sentences from tests/data (one a line; 300 in all)."""
    with open(CORPUS, encoding="utf-8") as file:
        lines = file.read().splitlines()
    return lines[start : start + count]
