#!/usr/bin/env bash
# Print Flink SQL's reserved words as Flink's own parser knows them, for
# kappa_orch/spec/flink_reserved_words.txt:
#   scripts/flink_reserved_words.sh > /tmp/words && tail -n +4 kappa_orch/spec/flink_reserved_words.txt | diff - /tmp/words
# Needs the project's virtualenv (pyflink) and a JDK.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
LIB="$("$ROOT/.venv/bin/python" -c 'import pyflink, os; print(os.path.join(os.path.dirname(pyflink.__file__), "lib"))')"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
# the planner (with the SQL parser) is a jar inside the planner loader's jar
(cd "$WORK" && unzip -q "$LIB"/flink-table-planner-loader-*.jar flink-table-planner.jar)
cat > "$WORK/Words.java" <<'JAVA'
import java.util.TreeSet;
import org.apache.calcite.sql.parser.SqlAbstractParserImpl;
import org.apache.flink.sql.parser.impl.FlinkSqlParserImpl;

public class Words {
  public static void main(String[] args) {
    SqlAbstractParserImpl.Metadata metadata =
        FlinkSqlParserImpl.FACTORY.getParser(new java.io.StringReader("")).getMetadata();
    TreeSet<String> words = new TreeSet<>();
    for (String token : metadata.getTokens()) {
      if (metadata.isReservedWord(token) && token.matches("[A-Z_][A-Z0-9_]*")) words.add(token);
    }
    words.forEach(System.out::println);
  }
}
JAVA
java -cp "$WORK/flink-table-planner.jar:$LIB/*" "$WORK/Words.java" 2>/dev/null
