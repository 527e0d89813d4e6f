"""Reading handwritten numbers in pictures with a trained run: a `digits` classifier (segment, then classify) or a
`digit-lines` line recognizer (read each line whole). `read_digits(image, model) -> Reading`."""

from dlzoo.reader.lines import LineReader
from dlzoo.reader.read import DigitReader, ReadDigit, Reading, load_reader, read_digits, reader_for

__all__ = ["DigitReader", "LineReader", "ReadDigit", "Reading", "load_reader", "read_digits", "reader_for"]
