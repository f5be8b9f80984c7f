defmodule H2Flow.Frame do
  @moduledoc """
  The HTTP/2 frame codec (RFC 9113 §4, §6), on Elixir structs.

  `decode/2` reads every complete frame at the start of a binary and returns what is left, so
  it can be fed a byte stream incrementally. It is strict: every length and stream-id rule of
  RFC 9113 §6 is checked, and an invalid frame returns the HTTP/2 error code, whether it is a
  connection or a stream error, and a message citing the RFC. Payloads (DATA data, header block
  fragments, GOAWAY debug data) are sub-binaries of the input, not copies.

  `encode/1` turns a struct back into bytes. It writes what it is given, including frames that
  break protocol rules (a PING on a stream, a WINDOW_UPDATE of 0), which is what a test of a
  peer's error handling needs; values that cannot be encoded at all raise `ArgumentError`.

  Header block fragments stay HPACK-encoded: this module does not compress headers.

      iex> bytes = H2Flow.Frame.encode(%H2Flow.Frame.Ping{data: "12345678"})
      iex> {:ok, [ping], ""} = H2Flow.Frame.decode(bytes)
      iex> ping
      %H2Flow.Frame.Ping{ack: false, data: "12345678"}

      iex> bytes = IO.iodata_to_binary([
      ...>   H2Flow.Frame.encode(%H2Flow.Frame.WindowUpdate{stream_id: 0, increment: 1000}),
      ...>   H2Flow.Frame.encode(%H2Flow.Frame.Data{stream_id: 1, data: "hello", end_stream: true})
      ...> ])
      iex> {:ok, frames, "partial"} = H2Flow.Frame.decode(bytes <> "partial")
      iex> Enum.map(frames, & &1.__struct__)
      [H2Flow.Frame.WindowUpdate, H2Flow.Frame.Data]

      iex> H2Flow.Frame.decode(<<0, 0, 7, 6, 0, 0, 0, 0, 0, "1234567">>)
      {:error, {:connection_error, :frame_size_error, "PING frame length is not 8 octets (RFC 9113 6.7)"}}
  """

  alias H2Flow.Native

  @typedoc "An HTTP/2 error code: a snake_case atom for the codes RFC 9113 defines, else an integer."
  @type error_code ::
          :no_error
          | :protocol_error
          | :internal_error
          | :flow_control_error
          | :settings_timeout
          | :stream_closed
          | :frame_size_error
          | :refused_stream
          | :cancel
          | :compression_error
          | :connect_error
          | :enhance_your_calm
          | :inadequate_security
          | :http_1_1_required
          | non_neg_integer()

  @typedoc "Why a frame is invalid (RFC 9113 §5.4): the whole connection, or one stream."
  @type reason ::
          {:connection_error, error_code(), String.t()}
          | {:stream_error, pos_integer(), error_code(), String.t()}

  @type t ::
          H2Flow.Frame.Data.t()
          | H2Flow.Frame.Headers.t()
          | H2Flow.Frame.Priority.t()
          | H2Flow.Frame.RstStream.t()
          | H2Flow.Frame.Settings.t()
          | H2Flow.Frame.PushPromise.t()
          | H2Flow.Frame.Ping.t()
          | H2Flow.Frame.Goaway.t()
          | H2Flow.Frame.WindowUpdate.t()
          | H2Flow.Frame.Continuation.t()
          | H2Flow.Frame.Unknown.t()

  @default_max_frame_size 16_384

  defmodule Data do
    @moduledoc "A DATA frame (RFC 9113 §6.1). `padding` is the pad length, or `nil` when not padded."
    defstruct stream_id: 1, end_stream: false, data: "", padding: nil

    @type t :: %__MODULE__{
            stream_id: non_neg_integer(),
            end_stream: boolean(),
            data: iodata(),
            padding: nil | 0..255
          }
  end

  defmodule Headers do
    @moduledoc """
    A HEADERS frame (RFC 9113 §6.2). `fragment` is HPACK-encoded; `priority` is
    `{exclusive?, dependency, weight}` (weight as on the wire, 0..255) or `nil`.
    """
    defstruct stream_id: 1,
              end_stream: false,
              end_headers: true,
              priority: nil,
              fragment: "",
              padding: nil

    @type t :: %__MODULE__{
            stream_id: non_neg_integer(),
            end_stream: boolean(),
            end_headers: boolean(),
            priority: nil | {boolean(), non_neg_integer(), 0..255},
            fragment: iodata(),
            padding: nil | 0..255
          }
  end

  defmodule Priority do
    @moduledoc "A PRIORITY frame (RFC 9113 §6.3); `weight` as on the wire (0..255)."
    defstruct stream_id: 1, exclusive: false, dependency: 0, weight: 15

    @type t :: %__MODULE__{
            stream_id: non_neg_integer(),
            exclusive: boolean(),
            dependency: non_neg_integer(),
            weight: 0..255
          }
  end

  defmodule RstStream do
    @moduledoc "A RST_STREAM frame (RFC 9113 §6.4)."
    defstruct stream_id: 1, error_code: :no_error

    @type t :: %__MODULE__{stream_id: non_neg_integer(), error_code: H2Flow.Frame.error_code()}
  end

  defmodule Settings do
    @moduledoc """
    A SETTINGS frame (RFC 9113 §6.5). `params` keep their wire order; known identifiers are
    atoms (`:header_table_size`, `:enable_push`, `:max_concurrent_streams`,
    `:initial_window_size`, `:max_frame_size`, `:max_header_list_size`,
    `:enable_connect_protocol`, `:no_rfc7540_priorities`), others integers.
    """
    defstruct ack: false, params: []

    @type t :: %__MODULE__{
            ack: boolean(),
            params: [{atom() | non_neg_integer(), non_neg_integer()}]
          }
  end

  defmodule PushPromise do
    @moduledoc "A PUSH_PROMISE frame (RFC 9113 §6.6)."
    defstruct stream_id: 1, promised_stream_id: 2, end_headers: true, fragment: "", padding: nil

    @type t :: %__MODULE__{
            stream_id: non_neg_integer(),
            promised_stream_id: non_neg_integer(),
            end_headers: boolean(),
            fragment: iodata(),
            padding: nil | 0..255
          }
  end

  defmodule Ping do
    @moduledoc "A PING frame (RFC 9113 §6.7); `data` is 8 bytes."
    defstruct ack: false, data: <<0::64>>

    @type t :: %__MODULE__{ack: boolean(), data: <<_::64>>}
  end

  defmodule Goaway do
    @moduledoc "A GOAWAY frame (RFC 9113 §6.8)."
    defstruct last_stream_id: 0, error_code: :no_error, debug_data: ""

    @type t :: %__MODULE__{
            last_stream_id: non_neg_integer(),
            error_code: H2Flow.Frame.error_code(),
            debug_data: iodata()
          }
  end

  defmodule WindowUpdate do
    @moduledoc "A WINDOW_UPDATE frame (RFC 9113 §6.9); stream 0 is the connection."
    defstruct stream_id: 0, increment: 1

    @type t :: %__MODULE__{stream_id: non_neg_integer(), increment: non_neg_integer()}
  end

  defmodule Continuation do
    @moduledoc "A CONTINUATION frame (RFC 9113 §6.10)."
    defstruct stream_id: 1, end_headers: true, fragment: ""

    @type t :: %__MODULE__{
            stream_id: non_neg_integer(),
            end_headers: boolean(),
            fragment: iodata()
          }
  end

  defmodule Unknown do
    @moduledoc "A frame of a type RFC 9113 does not define; receivers ignore these (§4.1, §5.5)."
    defstruct type: 0xFF, flags: 0, stream_id: 0, payload: ""

    @type t :: %__MODULE__{
            type: 10..255,
            flags: 0..255,
            stream_id: non_neg_integer(),
            payload: iodata()
          }
  end

  @doc """
  Decodes the complete frames at the start of `binary`; returns them with the bytes that do not
  yet form a whole frame.

  Options: `:max_frame_size` (default 16,384, the SETTINGS_MAX_FRAME_SIZE in force): a longer
  frame is a FRAME_SIZE_ERROR, detected from its 9-byte header alone.
  """
  @spec decode(binary(), keyword()) :: {:ok, [t()], binary()} | {:error, reason()}
  def decode(binary, opts \\ []) when is_binary(binary) and is_list(opts) do
    max = Keyword.get(opts, :max_frame_size, @default_max_frame_size)

    unless is_integer(max) and max in 16_384..16_777_215 do
      raise ArgumentError, ":max_frame_size must be an integer in 16384..16777215"
    end

    decode_loop(binary, max, [])
  end

  defp decode_loop(binary, max, acc) do
    case Native.frame_decode(binary, max) do
      {:ok, frames, rest, :done} -> {:ok, flatten(acc, frames), rest}
      {:ok, frames, rest, :more} -> decode_loop(rest, max, [frames | acc])
      {:error, _reason} = error -> error
    end
  end

  defp flatten(acc, last), do: Enum.reduce(acc, last, fn frames, tail -> frames ++ tail end)

  @doc """
  Encodes a frame. Raises `ArgumentError` for values that do not fit their fields.
  """
  @spec encode(t()) :: iodata()
  def encode(%_{} = frame), do: Native.frame_encode(frame)

  @doc """
  Encodes a whole HPACK header block as one HEADERS frame and as many CONTINUATION frames as
  `max_frame_size` (the peer's SETTINGS_MAX_FRAME_SIZE) requires (RFC 9113 §4.3).
  """
  @spec encode_header_block(pos_integer(), iodata(), boolean(), pos_integer()) :: iodata()
  def encode_header_block(stream_id, block, end_stream, max_frame_size \\ @default_max_frame_size)
      when is_integer(stream_id) and is_boolean(end_stream) and is_integer(max_frame_size) do
    Native.frame_encode_header_block(stream_id, block, end_stream, max_frame_size)
  end
end
