"""Reading handwritten numbers in pictures with a trained `digits` run: `read_digits(image, model) -> Reading`."""

from dlzoo.reader.read import DigitReader, ReadDigit, Reading, read_digits

__all__ = ["DigitReader", "ReadDigit", "Reading", "read_digits"]
