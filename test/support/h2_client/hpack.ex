defmodule H2Flow.Test.H2Client.HPACK do
  @moduledoc """
  HPACK (RFC 7541) for `H2Flow.Test.H2Client`, independent of the NIF: a literal-only encoder
  for requests and a complete decoder for responses (static table, dynamic table with eviction
  and size updates, Huffman coding).

      iex> alias H2Flow.Test.H2Client.HPACK
      iex> block = HPACK.encode_literal_block([{":status", "200"}, {"server", "h2flow"}])
      iex> {:ok, headers, _table} = HPACK.decode_block(HPACK.new_table(), block)
      iex> headers
      [{":status", "200"}, {"server", "h2flow"}]
  """

  import Bitwise

  @type headers :: [{binary(), binary()}]
  @typedoc "A decoder's table: entries newest first, their size, the maximum and its limit."
  @type table :: %{
          entries: [{binary(), binary()}],
          size: non_neg_integer(),
          max: non_neg_integer(),
          limit: non_neg_integer()
        }

  @doc """
  Encodes header fields as literals without indexing, new name, no Huffman coding (RFC 7541
  6.2.2): a block any decoder reads without touching its dynamic table.

      iex> H2Flow.Test.H2Client.HPACK.encode_literal_block([{":path", "/"}])
      <<0, 5, ":path", 1, "/">>
  """
  @spec encode_literal_block(headers()) :: binary()
  def encode_literal_block(headers) do
    IO.iodata_to_binary(
      for {name, value} <- headers do
        [0, encode_int(byte_size(name), 7, 0), name, encode_int(byte_size(value), 7, 0), value]
      end
    )
  end

  @doc "Encodes an integer with an `n`-bit prefix (RFC 7541 5.1); `high` holds the bits above it."
  @spec encode_int(non_neg_integer(), 1..8, non_neg_integer()) :: iodata()
  def encode_int(i, n, high) do
    max = (1 <<< n) - 1
    if i < max, do: [high ||| i], else: [high ||| max | encode_rest(i - max)]
  end

  defp encode_rest(i) when i < 128, do: [i]
  defp encode_rest(i), do: [0x80 ||| (i &&& 0x7F) | encode_rest(i >>> 7)]

  @doc """
  A decoding table. `limit` is the SETTINGS_HEADER_TABLE_SIZE the decoder's side advertised:
  the table starts at that size and size updates may not exceed it.
  """
  @spec new_table(non_neg_integer()) :: table()
  def new_table(limit \\ 4096), do: %{entries: [], size: 0, max: limit, limit: limit}

  @doc """
  Decodes a complete header block. Returns the fields in order and the updated table, or
  `{:error, reason}` for anything RFC 7541 calls a decoding error.
  """
  @spec decode_block(table(), binary()) :: {:ok, headers(), table()} | {:error, term()}
  def decode_block(table, block), do: decode_fields(block, table, [], true)

  defp decode_fields(<<>>, table, acc, _first?), do: {:ok, Enum.reverse(acc), table}

  # 6.1 Indexed Header Field.
  defp decode_fields(<<1::1, _::7, _::binary>> = bin, table, acc, _first?) do
    with {:ok, index, rest} <- decode_int(bin, 7),
         {:ok, field} <- lookup(table, index),
         do: decode_fields(rest, table, [field | acc], false)
  end

  # 6.2.1 Literal Header Field with Incremental Indexing.
  defp decode_fields(<<0b01::2, _::6, _::binary>> = bin, table, acc, _first?) do
    with {:ok, {name, value} = field, rest} <- literal(bin, 6, table),
         do: decode_fields(rest, add(table, name, value), [field | acc], false)
  end

  # 6.3 Dynamic Table Size Update: only at the start of a block (4.2), within the limit.
  defp decode_fields(<<0b001::3, _::5, _::binary>> = bin, table, acc, first?) do
    with {:ok, size, rest} <- decode_int(bin, 5) do
      cond do
        not first? -> {:error, :size_update_after_field}
        size > table.limit -> {:error, {:size_update_above_limit, size}}
        true -> decode_fields(rest, evict(%{table | max: size}), acc, true)
      end
    end
  end

  # 6.2.2 Literal without Indexing and 6.2.3 Literal Never Indexed.
  defp decode_fields(<<0b000::3, _::5, _::binary>> = bin, table, acc, _first?) do
    with {:ok, field, rest} <- literal(bin, 4, table),
         do: decode_fields(rest, table, [field | acc], false)
  end

  defp literal(bin, prefix, table) do
    with {:ok, index, rest} <- decode_int(bin, prefix),
         {:ok, name, rest} <- literal_name(index, rest, table),
         {:ok, value, rest} <- decode_string(rest),
         do: {:ok, {name, value}, rest}
  end

  defp literal_name(0, rest, _table), do: decode_string(rest)

  defp literal_name(index, rest, table) do
    with {:ok, {name, _}} <- lookup(table, index), do: {:ok, name, rest}
  end

  defp decode_string(<<h::1, _::7, _::binary>> = bin) do
    with {:ok, len, rest} <- decode_int(bin, 7) do
      case rest do
        <<s::binary-size(len), rest::binary>> when h == 1 ->
          with {:ok, s} <- huffman_decode(s), do: {:ok, s, rest}

        <<s::binary-size(len), rest::binary>> ->
          {:ok, s, rest}

        _ ->
          {:error, :truncated_string}
      end
    end
  end

  defp decode_string(_), do: {:error, :truncated_string}

  @doc """
  Decodes an integer with an `n`-bit prefix (RFC 7541 5.1) from the start of `bin`; the bits
  above the prefix are ignored. Values above 2^32 are refused (no header needs them).

      iex> H2Flow.Test.H2Client.HPACK.decode_int(<<0b11111, 0b10011010, 0b00001010, "rest">>, 5)
      {:ok, 1337, "rest"}
  """
  @spec decode_int(binary(), 1..8) :: {:ok, non_neg_integer(), binary()} | {:error, term()}
  def decode_int(bin, n) do
    max = (1 <<< n) - 1

    case bin do
      <<_::size(8 - n), i::size(n), rest::binary>> when i < max -> {:ok, i, rest}
      <<_::size(8 - n), _::size(n), rest::binary>> -> decode_rest(rest, max, 0)
      _ -> {:error, :truncated_integer}
    end
  end

  defp decode_rest(_bin, i, shift) when shift > 28, do: {:error, {:integer_overflow, i}}

  defp decode_rest(<<1::1, b::7, rest::binary>>, i, shift),
    do: decode_rest(rest, i + (b <<< shift), shift + 7)

  defp decode_rest(<<0::1, b::7, rest::binary>>, i, shift), do: {:ok, i + (b <<< shift), rest}
  defp decode_rest(<<>>, _i, _shift), do: {:error, :truncated_integer}

  # Appendix A.
  @static_list [
    {":authority", ""},
    {":method", "GET"},
    {":method", "POST"},
    {":path", "/"},
    {":path", "/index.html"},
    {":scheme", "http"},
    {":scheme", "https"},
    {":status", "200"},
    {":status", "204"},
    {":status", "206"},
    {":status", "304"},
    {":status", "400"},
    {":status", "404"},
    {":status", "500"},
    {"accept-charset", ""},
    {"accept-encoding", "gzip, deflate"},
    {"accept-language", ""},
    {"accept-ranges", ""},
    {"accept", ""},
    {"access-control-allow-origin", ""},
    {"age", ""},
    {"allow", ""},
    {"authorization", ""},
    {"cache-control", ""},
    {"content-disposition", ""},
    {"content-encoding", ""},
    {"content-language", ""},
    {"content-length", ""},
    {"content-location", ""},
    {"content-range", ""},
    {"content-type", ""},
    {"cookie", ""},
    {"date", ""},
    {"etag", ""},
    {"expect", ""},
    {"expires", ""},
    {"from", ""},
    {"host", ""},
    {"if-match", ""},
    {"if-modified-since", ""},
    {"if-none-match", ""},
    {"if-range", ""},
    {"if-unmodified-since", ""},
    {"last-modified", ""},
    {"link", ""},
    {"location", ""},
    {"max-forwards", ""},
    {"proxy-authenticate", ""},
    {"proxy-authorization", ""},
    {"range", ""},
    {"referer", ""},
    {"refresh", ""},
    {"retry-after", ""},
    {"server", ""},
    {"set-cookie", ""},
    {"strict-transport-security", ""},
    {"transfer-encoding", ""},
    {"user-agent", ""},
    {"vary", ""},
    {"via", ""},
    {"www-authenticate", ""}
  ]

  @static_table @static_list |> Enum.with_index(1) |> Map.new(fn {field, i} -> {i, field} end)

  @static_size map_size(@static_table)

  @doc "The RFC 7541 Appendix A static table entry at `index` (1..61)."
  @spec static_entry(pos_integer()) :: {binary(), binary()} | nil
  def static_entry(index), do: Map.get(@static_table, index)

  # 2.3.3: index 0 is an error; 1..61 static; above, the dynamic table, newest first.
  defp lookup(_table, 0), do: {:error, :index_zero}
  defp lookup(_table, i) when i <= @static_size, do: {:ok, Map.fetch!(@static_table, i)}

  defp lookup(table, i) do
    case Enum.at(table.entries, i - @static_size - 1) do
      nil -> {:error, {:bad_index, i}}
      field -> {:ok, field}
    end
  end

  # 4.4: an entry larger than the table empties it and is not added.
  defp add(table, name, value) do
    size = entry_size(name, value)

    if size > table.max,
      do: %{table | entries: [], size: 0},
      else: evict(%{table | entries: [{name, value} | table.entries], size: table.size + size})
  end

  # 4.3, 4.4: drop the oldest entries until the table fits its maximum size.
  defp evict(%{size: size, max: max} = table) when size <= max, do: table

  defp evict(%{entries: entries} = table) do
    {name, value} = List.last(entries)

    evict(%{
      table
      | entries: List.delete_at(entries, -1),
        size: table.size - entry_size(name, value)
    })
  end

  defp entry_size(name, value), do: byte_size(name) + byte_size(value) + 32

  # Appendix B: the code length of each symbol (0..255, then EOS = 256). The code is canonical
  # (codes of one length are consecutive, in symbol order, after all shorter ones), so the codes
  # themselves follow from the lengths; the tests check some against Appendix B.
  @huffman_lengths ~w"""
                   13 23 28 28 28 28 28 28 28 24 30 28 28 30 28 28
                   28 28 28 28 28 28 30 28 28 28 28 28 28 28 28 28
                   6 10 10 12 13 6 8 11 10 10 8 11 8 6 6 6
                   5 5 5 6 6 6 6 6 6 6 7 8 15 6 12 10
                   13 6 7 7 7 7 7 7 7 7 7 7 7 7 7 7
                   7 7 7 7 7 7 7 7 8 7 8 13 19 13 14 6
                   15 5 6 5 6 5 6 6 6 5 7 7 6 6 6 5
                   6 7 6 5 5 6 7 7 7 7 7 15 11 14 13 28
                   20 22 20 20 22 22 22 23 22 23 23 23 23 23 24 23
                   24 24 22 23 24 23 23 23 23 21 22 23 22 23 23 24
                   22 21 20 22 22 23 23 21 23 22 22 24 21 22 23 23
                   21 21 22 21 23 22 23 23 20 22 22 22 23 22 22 23
                   26 26 20 19 22 23 22 25 26 26 26 27 27 26 24 25
                   19 21 26 27 27 26 27 24 21 21 26 26 28 27 27 27
                   20 24 20 21 22 21 21 23 22 22 25 25 24 24 26 23
                   26 27 26 26 27 27 27 27 27 28 27 27 27 27 27 26
                   30
                   """
                   |> Enum.map(&String.to_integer/1)

  @huffman_codes @huffman_lengths
                 |> Enum.with_index()
                 |> Enum.sort_by(fn {len, sym} -> {len, sym} end)
                 |> Enum.map_reduce({-1, 0}, fn {len, sym}, {code, prev_len} ->
                   code = (code + 1) <<< (len - prev_len)
                   {{sym, {code, len}}, {code, len}}
                 end)
                 |> elem(0)
                 |> Map.new()

  @huffman_decode Map.new(@huffman_codes, fn {sym, code_len} -> {code_len, sym} end)

  @doc "The Huffman code of a symbol (0..256) as `{code, bit_length}` (RFC 7541 Appendix B)."
  @spec huffman_code(0..256) :: {non_neg_integer(), pos_integer()}
  def huffman_code(symbol), do: Map.fetch!(@huffman_codes, symbol)

  @doc """
  Decodes a Huffman-coded string (RFC 7541 5.2): padding of at most 7 bits, all ones; EOS
  inside the string is an error.
  """
  @spec huffman_decode(binary()) :: {:ok, binary()} | {:error, term()}
  def huffman_decode(bin), do: huffman_decode(bin, 0, 0, [])

  defp huffman_decode(<<bit::1, rest::bitstring>>, code, len, acc) do
    code = code <<< 1 ||| bit
    len = len + 1

    case Map.fetch(@huffman_decode, {code, len}) do
      {:ok, 256} -> {:error, :huffman_eos}
      {:ok, sym} -> huffman_decode(rest, 0, 0, [sym | acc])
      :error when len >= 30 -> {:error, :huffman_bad_code}
      :error -> huffman_decode(rest, code, len, acc)
    end
  end

  defp huffman_decode(<<>>, code, len, acc) do
    if len <= 7 and code == (1 <<< len) - 1,
      do: {:ok, acc |> Enum.reverse() |> :erlang.list_to_binary()},
      else: {:error, :huffman_bad_padding}
  end

  @doc "Huffman-encodes a string (RFC 7541 5.2), padded with the most significant bits of EOS."
  @spec huffman_encode(binary()) :: binary()
  def huffman_encode(s) do
    bits =
      for <<c <- s>>, into: <<>> do
        {code, len} = huffman_code(c)
        <<code::size(len)>>
      end

    pad = rem(8 - rem(bit_size(bits), 8), 8)
    <<bits::bitstring, (1 <<< pad) - 1::size(pad)>>
  end
end
