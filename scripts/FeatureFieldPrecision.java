// How Lucene's FeatureField (the rank_features field of Elasticsearch/OpenSearch) stores values:
// it keeps the top 17 bits of the float (9 significant bits), truncating. Run with the assets of
// scripts/setup-assets --lucene and any javac:
//   javac -d /tmp -cp assets/lucene/anserini-1.7.1-fatjar.jar scripts/FeatureFieldPrecision.java
//   assets/lucene/java-runtime/bin/java -cp assets/lucene/anserini-1.7.1-fatjar.jar:/tmp FeatureFieldPrecision
// export::lucene_feature_value reproduces the printed values (its unit test holds them).
import org.apache.lucene.document.FeatureField;
import org.apache.lucene.analysis.TokenStream;
import org.apache.lucene.analysis.tokenattributes.TermFrequencyAttribute;
public class FeatureFieldPrecision {
  public static void main(String[] a) throws Exception {
    float[] vs = {1f, 42f, 511f, 512f, 513f, 803f, 1249f, 1475f, 0.42f, 0.1f};
    for (float v : vs) {
      FeatureField f = new FeatureField("latent_terms", "l17", v);
      TokenStream ts = f.tokenStream(null, null);
      TermFrequencyAttribute tf = ts.addAttribute(TermFrequencyAttribute.class);
      ts.reset(); ts.incrementToken();
      int freq = tf.getTermFrequency();
      float back = Float.intBitsToFloat(freq << 15);
      System.out.println(v + " -> " + back + " rel " + ((v - back) / v));
    }
  }
}
