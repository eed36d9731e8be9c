"""The tests' inputs, in one place: HARD_TEXTS (short and long, many scripts, accents, emoji, whitespace, empty,
literal special tokens), HARD_TEXT_KINDS and FEW_HARD_TEXTS (one text of each kind, for tests where every text
costs), the paths of the data sets in tests/data (README.md there gives their sources and licences) and of the
repository."""

from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DATA = REPO / "tests" / "data"
CORPUS = DATA / "stdlib_sentences-300.txt"  # natural English sentences, one a line
KORSTS = DATA / "korsts-test-100.tsv"  # 100 scored Korean sentence pairs

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
    "literal [CLS] [SEP] <s> </s> <pad> tokens",
    "[MASK] and [UNK] stay whole",
    "Café DÉJÀ vu ÅNGSTRÖM",
    "don't stop-believing!!",
]

# One text of each kind, by name; FEW_HARD_TEXTS lists them in this order (tests pick some by position).
HARD_TEXT_KINDS = {
    "plain": HARD_TEXTS[0],
    "empty": HARD_TEXTS[3],
    "whitespace": HARD_TEXTS[5],
    "accents": HARD_TEXTS[13],
    "korean": HARD_TEXTS[21],
    "japanese": HARD_TEXTS[20],
    "emoji": HARD_TEXTS[29],  # flags, and a family joined by zero-width joiners
    "special_tokens": HARD_TEXTS[50],  # literal [CLS], <s>, <pad>... in the text
    "long": HARD_TEXTS[40],  # far longer than any max_seq_length
    "one_letter": HARD_TEXTS[6],
}
FEW_HARD_TEXTS = list(HARD_TEXT_KINDS.values())


def corpus_sentences(count, start=0):
    """``count`` natural English sentences from tests/data (one a line; 300 in all)."""
    with open(CORPUS, encoding="utf-8") as file:
        lines = file.read().splitlines()
    return lines[start : start + count]
