defmodule H2Flow.Demo.JSON do
  @moduledoc false
  # A small JSON encoder (RFC 8259) for what the demo's /stats and /report hold, and for the
  # browser tests' DevTools messages: no Hex, and Elixir 1.14 has no JSON module. Object keys
  # come out sorted.

  @spec encode!(term()) :: binary()
  def encode!(term), do: term |> encode() |> IO.iodata_to_binary()

  defp encode(nil), do: "null"
  defp encode(true), do: "true"
  defp encode(false), do: "false"
  defp encode(atom) when is_atom(atom), do: atom |> Atom.to_string() |> encode()
  defp encode(n) when is_integer(n), do: Integer.to_string(n)
  defp encode(f) when is_float(f), do: :erlang.float_to_binary(f, [:short])
  defp encode(s) when is_binary(s), do: [?", escape(s), ?"]
  defp encode(list) when is_list(list), do: [?[, Enum.map_intersperse(list, ?,, &encode/1), ?]]

  defp encode(map) when is_map(map) do
    pairs =
      map
      |> Enum.map(fn {k, v} -> {to_string(k), v} end)
      |> Enum.sort()
      |> Enum.map_intersperse(?,, fn {k, v} -> [encode(k), ?:, encode(v)] end)

    [?{, pairs, ?}]
  end

  # RFC 8259 7: quote, backslash and control characters must be escaped.
  defp escape(s) do
    for <<c <- s>>, into: "" do
      case c do
        ?" -> "\\\""
        ?\\ -> "\\\\"
        ?\n -> "\\n"
        ?\r -> "\\r"
        ?\t -> "\\t"
        c when c < 0x20 -> "\\u00" <> Base.encode16(<<c>>)
        c -> <<c>>
      end
    end
  end
end
