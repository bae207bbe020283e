//! timex: the StackTach time-expression language ($last + 1h, day, ranges), pure.
