using System.Text;

namespace Adp;

/// <summary>
/// An error caused by the user's input (a file, a folder, an option). Its message is one line that
/// names what was wrong and what was expected; the CLI prints it without a stack trace. Messages quote text from
/// the input (a key, a value, a parser's excerpt), so the constructor keeps them one line whatever that text holds:
/// line breaks, tabs and other control characters are written as escapes (\n, \t, \u0001), and a message longer
/// than <see cref="MaxLength"/> characters is shortened.
/// </summary>
public class AdpException : Exception
{
    /// <summary>Longest message kept whole.</summary>
    public const int MaxLength = 2000;

    public AdpException(string message) : base(OneLine(message)) { }
    public AdpException(string message, Exception inner) : base(OneLine(message), inner) { }

    /// <summary><paramref name="text"/> on one line: control characters escaped, at most <paramref name="max"/>
    /// characters (then "…").</summary>
    public static string OneLine(string text, int max = MaxLength)
    {
        var sb = new StringBuilder(Math.Min(text.Length, max) + 8);
        foreach (char c in text)
        {
            if (sb.Length >= max) return sb.Append('…').ToString();
            sb.Append(c switch
            {
                '\n' => "\\n", '\r' => "\\r", '\t' => "\\t",
                _ when char.IsControl(c) || c is '\u2028' or '\u2029' or '\u0085' => $"\\u{(int)c:x4}",
                _ => c.ToString(),
            });
        }
        return sb.ToString();
    }
}
