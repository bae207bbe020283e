# Prints "<expression>\t<outcome>" for each line of cases.txt, evaluated by the ORIGINAL
# Python timex (oracle venv). Regenerate: /tmp/stv3-oracle-venv/bin/python gen_vectors.py < cases.txt

import sys, datetime, json, timex
dt = datetime.datetime(2014,8,1,2,10,23,550)
base = dict(x=dt, w=datetime.datetime(2014,8,2,3,11,24,551), timestamp=dt,
            a=datetime.datetime(2014,1,31,12,0,0), b=datetime.datetime(2016,2,29,0,0,0),
            p=datetime.datetime(2014,8,1,17,30,10,25), e=datetime.datetime(2014,8,1,19,45,0),
            q=datetime.datetime(2014,12,31,23,59,59,999999))
def fmt(t): return t.strftime('%Y-%m-%d %H:%M:%S.%f')
for line in sys.stdin:
    line=line.rstrip('\n')
    if not line: continue
    try:
        r = timex.parse(line)(**base)
        if r.is_range:
            out = "R %s %s" % (fmt(r.begin), fmt(r.end))
        else:
            out = "T %s" % fmt(r.timestamp)
    except timex.TimexLexerError as e: out = "ERR lexer"
    except timex.TimexParserError as e: out = "ERR parser"
    except timex.TimexExpressionError as e: out = "ERR expression"
    except ValueError as e: out = "ERR value"
    except Exception as e: out = "CRASH %s" % type(e).__name__
    print("%s\t%s" % (line, out))
