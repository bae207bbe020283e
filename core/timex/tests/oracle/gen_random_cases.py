# Random timex expressions for differential testing (see README.md). Usage: python3 gen_random_cases.py > cases_random.txt
import random

random.seed(7)
VARS = ['$x', '$w', '$a', '$b', '$p', '$e', '$q', '$timestamp']
FUNCS = ['day', 'hour', 'month', 'year']
UNITS = ['us', 's', 'm', 'h', 'd', 'mo', 'y', 'sec', 'min', 'hr', 'yr']
NUMS = [0, 1, 2, 5, 6, 12, 13, 23, 25, 28, 29, 30, 31, 59, 60, 61, 100, 400, 1000, 100000]


def dur(amb_ok):
    parts = []
    for _ in range(random.choice([1, 1, 1, 2, 3])):
        n = random.choice(NUMS)
        if amb_ok and random.random() < 0.25:
            parts.append(str(n))
        else:
            parts.append("%d%s" % (n, random.choice(UNITS)))
    return ' '.join(parts)


def ts_expr(depth=0):
    e = random.choice(VARS)
    if random.random() < 0.2 and depth < 2:
        e = '(%s)' % ts_expr(depth + 1)
    for _ in range(random.choice([0, 0, 1, 1, 2])):
        e = '%s %s %s' % (e, random.choice('+-@'), dur(False))
    return e


def range_expr():
    r = random.random()
    if r < 0.35:
        e = '(%s to %s)' % (ts_expr(), ts_expr())
    elif r < 0.6:
        e = random.choice(FUNCS)
    else:
        e = '%s(%s)' % (random.choice(FUNCS), ts_expr())
    for _ in range(random.choice([1, 1, 2])):
        e = '%s %s %s' % (e, random.choice('+-@'), dur(True))
    return e


for _ in range(4000):
    print(ts_expr() if random.random() < 0.4 else range_expr())
