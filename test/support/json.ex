defmodule H2Flow.Test.JSON do
  @moduledoc false
  # JSON for the browser tests' DevTools messages: the demo's encoder, and a small decoder
  # (RFC 8259) that raises on malformed input. No Hex, and Elixir 1.14 has no JSON module.

  @spec encode!(term()) :: binary()
  defdelegate encode!(term), to: H2Flow.Demo.JSON

  @spec decode!(binary()) :: term()
  def decode!(json) do
    case value(ws(json)) do
      {value, rest} when rest == "" -> value
      {_value, rest} -> fail(rest)
    end
  end

  defp ws(<<c, rest::binary>>) when c in [?\s, ?\t, ?\n, ?\r], do: ws(rest)
  defp ws(rest), do: rest

  # Returns {value, rest with leading whitespace skipped}.
  defp value(<<?{, rest::binary>>), do: object(ws(rest), %{})
  defp value(<<?[, rest::binary>>), do: array(ws(rest), [])
  defp value(<<?", rest::binary>>), do: rest |> string([]) |> skip()
  defp value(<<"true", rest::binary>>), do: {true, ws(rest)}
  defp value(<<"false", rest::binary>>), do: {false, ws(rest)}
  defp value(<<"null", rest::binary>>), do: {nil, ws(rest)}
  defp value(<<c, _::binary>> = json) when c == ?- or c in ?0..?9, do: number(json)
  defp value(rest), do: fail(rest)

  defp skip({value, rest}), do: {value, ws(rest)}

  defp object(<<?}, rest::binary>>, acc), do: {acc, ws(rest)}

  defp object(<<?", rest::binary>>, acc) do
    {key, rest} = string(rest, [])

    case ws(rest) do
      <<?:, rest::binary>> ->
        {value, rest} = value(ws(rest))
        acc = Map.put(acc, key, value)

        case rest do
          <<?,, rest::binary>> -> object(ws(rest), acc)
          <<?}, rest::binary>> -> {acc, ws(rest)}
          rest -> fail(rest)
        end

      rest ->
        fail(rest)
    end
  end

  defp object(rest, _acc), do: fail(rest)

  defp array(<<?], rest::binary>>, []), do: {[], ws(rest)}

  defp array(json, acc) do
    {value, rest} = value(json)

    case rest do
      <<?,, rest::binary>> -> array(ws(rest), [value | acc])
      <<?], rest::binary>> -> {Enum.reverse([value | acc]), ws(rest)}
      rest -> fail(rest)
    end
  end

  # Copies runs without escapes in one piece: screenshots arrive as one long base64 string.
  defp string(json, acc) do
    case :binary.match(json, ["\"", "\\"]) do
      {at, 1} ->
        <<run::binary-size(at), c, rest::binary>> = json

        if c == ?" do
          {IO.iodata_to_binary([acc, run]), rest}
        else
          {char, rest} = unescape(rest)
          string(rest, [acc, run, char])
        end

      :nomatch ->
        fail(json)
    end
  end

  defp unescape(<<?u, hex::binary-size(4), rest::binary>>) do
    code = String.to_integer(hex, 16)

    case rest do
      # A UTF-16 surrogate pair (RFC 8259 7).
      <<?\\, ?u, low::binary-size(4), rest::binary>> when code in 0xD800..0xDBFF ->
        low = String.to_integer(low, 16)
        {<<0x10000 + (code - 0xD800) * 0x400 + (low - 0xDC00)::utf8>>, rest}

      # A lone surrogate is no character: the replacement character stands for it.
      _ when code in 0xD800..0xDFFF ->
        {"\uFFFD", rest}

      _ ->
        {<<code::utf8>>, rest}
    end
  end

  defp unescape(<<c, rest::binary>>) do
    case c do
      ?" -> {"\"", rest}
      ?\\ -> {"\\", rest}
      ?/ -> {"/", rest}
      ?b -> {"\b", rest}
      ?f -> {"\f", rest}
      ?n -> {"\n", rest}
      ?r -> {"\r", rest}
      ?t -> {"\t", rest}
      _ -> fail(<<c, rest::binary>>)
    end
  end

  defp number(json) do
    [text] = Regex.run(~r/\A-?(0|[1-9]\d*)(\.\d+)?([eE][-+]?\d+)?/, json, capture: :first)
    rest = binary_part(json, byte_size(text), byte_size(json) - byte_size(text))

    value =
      case Integer.parse(text) do
        {n, ""} -> n
        _ -> text |> Float.parse() |> elem(0)
      end

    {value, ws(rest)}
  end

  defp fail(rest), do: raise(ArgumentError, "invalid JSON at: #{inspect(binary_slice(rest))}")

  defp binary_slice(rest), do: binary_part(rest, 0, min(byte_size(rest), 40))
end
