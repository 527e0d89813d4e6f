"""Reading handwritten numbers in pictures with a trained run: a `digits` classifier (segment, then classify) or a
`digit-lines` line recognizer (read each line whole). `read_digits(image, model) -> Reading`."""

from dlzoo.reader.read import DigitReader, ReadDigit, Reading, load_reader, read_digits, reader_for

__all__ = ["DigitReader", "LineReader", "ReadDigit", "Reading", "load_reader", "read_digits", "reader_for"]


def __getattr__(name: str):
    if name == "LineReader":  # imported on first use: it pulls in nothing the classifier reader needs
        from dlzoo.reader.lines import LineReader

        return LineReader
    raise AttributeError(name)
